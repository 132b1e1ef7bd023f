package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/iotflow/iotflow/internal/iotflow"
)

func TestWrap(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	tests := []struct {
		name string
		err  error
		code string
	}{
		{"nil", nil, ""},
		{"no rows", pgx.ErrNoRows, iotflow.ENOTFOUND},
		{"unique", &pgconn.PgError{Code: "23505"}, iotflow.ECONFLICT},
		{"foreign key", fmt.Errorf("copy: %w", &pgconn.PgError{Code: "23503"}), iotflow.ENOTFOUND},
		{"check", &pgconn.PgError{Code: "23514"}, iotflow.EINVALID},
		{"NUL in JSON", &pgconn.PgError{Code: "22P05"}, iotflow.EINVALID},
		{"lone surrogate in JSON", &pgconn.PgError{Code: "22P02", Message: "invalid input syntax for type json"}, iotflow.EINVALID},
		{"numeric overflow", fmt.Errorf("batch: %w", &pgconn.PgError{Code: "22003"}), iotflow.EINVALID},
		{"syntax", &pgconn.PgError{Code: "42601"}, iotflow.EINTERNAL},
		{"other", errors.New("boom"), iotflow.EINTERNAL},
		{"net error", refused, iotflow.EUNAVAILABLE},
		{"connection lost", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), iotflow.EUNAVAILABLE},
		{"connection exception", &pgconn.PgError{Code: "08006"}, iotflow.EUNAVAILABLE},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, iotflow.EUNAVAILABLE},
		{"too many connections", &pgconn.PgError{Code: "53300"}, iotflow.EUNAVAILABLE},
		{"application error", iotflow.Errorf(iotflow.EFORBIDDEN, "", "no"), iotflow.EFORBIDDEN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := wrap(context.Background(), "op", tt.err)
			if code := iotflow.ErrorCode(err); code != tt.code {
				t.Errorf("wrap(%v): code %q, want %q", tt.err, code, tt.code)
			}
		})
	}

	// An unavailable database keeps the cause for the log.
	err := wrap(context.Background(), "get device", refused)
	if !errors.Is(err, refused) {
		t.Errorf("wrap(%v) = %v, lost its cause", refused, err)
	}
	if msg := iotflow.ErrorMessage(err); msg != "The database is unavailable; try again later." {
		t.Errorf("ErrorMessage = %q", msg)
	}

	// When the caller gave up the error is the caller's, not the database's.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = wrap(ctx, "op", refused)
	if !errors.Is(err, context.Canceled) || iotflow.ErrorCode(err) != iotflow.EINTERNAL {
		t.Errorf("wrap with a cancelled context = %v (code %q), want context.Canceled", err, iotflow.ErrorCode(err))
	}
}
