package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The durable floor is the bare handler of bench_baseline.go made durable
// about as cheaply as this stack allows: each reading is appended to a
// table with nothing but a serial primary key and its JSON payload, by a
// group commit as small as it can be (one writer, one INSERT ... SELECT
// FROM unnest per batch, no device lookup, no counters, no middleware), and
// answered only once its batch has committed. A server that keeps the
// acknowledgement promise on the same PostgreSQL and the same cores does at
// least this much, so the floor's share of the bare handler is a practical
// bound on what IoTFlow, which does all of it and much more, can reach.

// floorTable is created afresh by each floor server, in the database of
// --floor-database, and dropped when the server stops: the only table the
// floor touches there.
const floorTable = "iotflow_bench_floor"

type floorJob struct {
	key     string
	payload json.RawMessage
	id      int64
	err     error
	done    chan struct{}
}

func runFloorServer(ctx context.Context, e env) error {
	dsn := e.getenv(floorDatabaseEnv)
	if dsn == "" {
		return errors.New("serve-floor needs " + floorDatabaseEnv + ": iotflow-bench --floor passes it")
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	h, err := floorHandler(ctx, pool)
	if err != nil {
		return err
	}
	err = serveTarget(ctx, e, "floor", h)
	// The table is this floor's own: it created it above.
	drop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, dropErr := pool.Exec(drop, `DROP TABLE IF EXISTS `+floorTable); err == nil {
		err = dropErr
	}
	return err
}

// floorHandler creates the floor's table and serves the floor: the bare
// handler's telemetry POST, answered once committed, and GET /floor/count,
// the rows stored. Its writer runs until ctx ends. A table of that name
// already there is refused, not replaced: it may be another floor's,
// running against the same database.
func floorHandler(ctx context.Context, pool *pgxpool.Pool) (http.Handler, error) {
	_, err := pool.Exec(ctx, `CREATE TABLE `+floorTable+` (id BIGSERIAL PRIMARY KEY, device_key TEXT NOT NULL,
		payload JSONB NOT NULL, received_at TIMESTAMPTZ NOT NULL DEFAULT now())`)
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "42P07" { // duplicate_table
		return nil, fmt.Errorf("floor: table %s exists already: another iotflow-bench --floor is using this database, "+
			"or one was killed before it dropped its table (drop it to go on)", floorTable)
	}
	if err != nil {
		return nil, fmt.Errorf("floor: create %s: %w", floorTable, err)
	}
	queue := make(chan *floorJob, 4096)
	go floorWriter(ctx, pool, queue)

	answer := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/devices/telemetry", func(w http.ResponseWriter, r *http.Request) {
		key, in, ok := bareReading(w, r)
		if !ok {
			return
		}
		j := &floorJob{key: key, payload: in.Data, done: make(chan struct{})}
		select {
		case queue <- j:
		default:
			http.Error(w, `{"error":"Service busy"}`, http.StatusServiceUnavailable)
			return
		}
		select {
		case <-j.done:
		case <-ctx.Done():
			http.Error(w, `{"error":"Shutting down"}`, http.StatusServiceUnavailable)
			return
		}
		if j.err != nil {
			http.Error(w, `{"error":"Service unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		answer(w, http.StatusCreated, map[string]any{
			"message":      "Telemetry data received successfully",
			"telemetry_id": j.id,
			"timestamp":    time.Now().UTC().Format("2006-01-02T15:04:05.000000-07:00"),
		})
	})
	mux.HandleFunc("GET /floor/count", func(w http.ResponseWriter, r *http.Request) {
		var n int64
		if err := pool.QueryRow(r.Context(), `SELECT count(*) FROM `+floorTable).Scan(&n); err != nil {
			http.Error(w, `{"error":"Service unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		answer(w, http.StatusOK, map[string]int64{"count": n})
	})
	return mux, nil
}

// floorWriter commits whatever is queued, up to 1000 readings, as one
// statement, and answers each reading once that has committed.
func floorWriter(ctx context.Context, pool *pgxpool.Pool, queue chan *floorJob) {
	const insert = `INSERT INTO ` + floorTable + ` (device_key, payload)
		SELECT k, p::jsonb FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(k, p, o) ORDER BY o RETURNING id`
	batch := make([]*floorJob, 0, 1000)
	keys, payloads := make([]string, 0, 1000), make([]string, 0, 1000)
	for {
		select {
		case j := <-queue:
			batch = append(batch[:0], j)
		case <-ctx.Done():
			return
		}
	gather:
		for len(batch) < cap(batch) {
			select {
			case j := <-queue:
				batch = append(batch, j)
			default:
				break gather
			}
		}
		keys, payloads = keys[:0], payloads[:0]
		for _, j := range batch {
			keys, payloads = append(keys, j.key), append(payloads, string(j.payload))
		}
		rows, _ := pool.Query(ctx, insert, keys, payloads)
		i := 0
		var id int64
		_, err := pgx.ForEachRow(rows, []any{&id}, func() error {
			if i < len(batch) {
				batch[i].id = id
			}
			i++
			return nil
		})
		if err == nil && i != len(batch) {
			err = fmt.Errorf("floor: %d ids for %d readings", i, len(batch))
		}
		for _, j := range batch {
			j.err = err
			close(j.done)
		}
	}
}
