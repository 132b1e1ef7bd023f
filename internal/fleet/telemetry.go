package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// ReadingInput is one reading as a device submits it.
type ReadingInput struct {
	Data      json.RawMessage `json:"data"`
	Metadata  json.RawMessage `json:"metadata"`
	Type      *string         `json:"type"`
	Timestamp json.RawMessage `json:"timestamp"`
	MessageID *string         `json:"message_id"`
}

// reading validates in and builds the reading to store. prefix names the
// record in error messages ("" for a single submission).
func (s *Service) reading(d *iotflow.Device, in *ReadingInput, prefix string) (*iotflow.Reading, error) {
	typ := ""
	if in.Type != nil {
		typ = *in.Type
	}
	meta, typ, err := iotflow.ValidateReading(in.Data, in.Metadata, typ)
	if err != nil {
		return nil, withPrefix(err, prefix)
	}
	now := s.Now()
	ts, err := iotflow.ParseTimestamp(in.Timestamp, now, s.opts.MaxClockSkew, prefix+"timestamp")
	if err != nil {
		return nil, err
	}
	if ts.IsZero() {
		ts = now
	}
	if cutoff := iotflow.RetentionCutoff(now, s.opts.Retention); ts.Before(cutoff) {
		return nil, iotflow.Errorf(iotflow.EINVALID, "Validation error",
			"Field '%stimestamp' lies before the retention window: readings are kept for %s", prefix, s.opts.Retention)
	}
	r := &iotflow.Reading{DeviceID: d.ID, Timestamp: ts, ReceivedAt: now, DataType: typ, Payload: in.Data, Metadata: meta}
	if in.MessageID != nil {
		if err := iotflow.ValidateMessageID(*in.MessageID, prefix+"message_id"); err != nil {
			return nil, err
		}
		r.MessageID = *in.MessageID
	}
	return r, nil
}

// withPrefix names the record in a validation message: "Field 'data'"
// becomes "Field 'records[3].data'", and another message is preceded by
// "records[3]: ".
func withPrefix(err error, prefix string) error {
	if prefix == "" {
		return err
	}
	var ae *iotflow.Error
	if !errors.As(err, &ae) {
		return err
	}
	e := *ae
	e.Message = replaceField(e.Message, prefix)
	return &e
}

func replaceField(msg, prefix string) string {
	const marker = "Field '"
	if len(msg) >= len(marker) && msg[:len(marker)] == marker {
		return marker + prefix + msg[len(marker):]
	}
	return strings.TrimSuffix(prefix, ".") + ": " + msg
}

// decodeRecord decodes one record of a batch.
func decodeRecord(raw json.RawMessage, in *ReadingInput, prefix string) error {
	name := strings.TrimSuffix(prefix, ".")
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return iotflow.Errorf(iotflow.EINVALID, "Validation error", "%s must be a JSON object", name)
	}
	if err := json.Unmarshal(raw, in); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return iotflow.Errorf(iotflow.EINVALID, "Validation error", "Field '%s%s' has the wrong type", prefix, te.Field)
		}
		return iotflow.Errorf(iotflow.EINVALID, "Validation error", "%s is not valid", name)
	}
	return nil
}

// SubmitReading validates and stores one reading of device d. A repeated
// message id is answered with the stored reading.
func (s *Service) SubmitReading(ctx context.Context, d *iotflow.Device, in *ReadingInput) (*iotflow.Reading, error) {
	r, err := s.reading(d, in, "")
	if err != nil {
		return nil, err
	}
	if err := s.submit(ctx, []*iotflow.Reading{r}); err != nil {
		var refused iotflow.ReadingErrors
		if errors.As(err, &refused) {
			return nil, refused[0]
		}
		return nil, err
	}
	return r, nil
}

// RecordResult is the outcome of one record of a batch: its stored reading
// or why it was rejected.
type RecordResult struct {
	Reading *iotflow.Reading
	Err     error
}

// SubmitBatch validates every record and stores the valid ones in one
// transaction. A record whose content the database refuses fails alone,
// like one that fails validation. It fails as a whole only when storing
// fails.
func (s *Service) SubmitBatch(ctx context.Context, d *iotflow.Device, records []json.RawMessage) ([]RecordResult, error) {
	results := make([]RecordResult, len(records))
	valid := make([]*iotflow.Reading, 0, len(records))
	index := make([]int, 0, len(records)) // of each valid reading's record
	for i, raw := range records {
		prefix := fmt.Sprintf("records[%d].", i)
		var in ReadingInput
		if err := decodeRecord(raw, &in, prefix); err != nil {
			results[i].Err = err
			continue
		}
		r, err := s.reading(d, &in, prefix)
		if err != nil {
			results[i].Err = err
			continue
		}
		results[i].Reading = r
		valid, index = append(valid, r), append(index, i)
	}
	err := s.submit(ctx, valid)
	var refused iotflow.ReadingErrors
	if errors.As(err, &refused) {
		for v, err := range refused {
			i := index[v]
			results[i].Reading, results[i].Err = nil, withPrefix(err, fmt.Sprintf("records[%d].", i))
		}
		return results, nil
	}
	if err != nil {
		return nil, err
	}
	return results, nil
}

func (s *Service) submit(ctx context.Context, rs []*iotflow.Reading) error {
	err := s.opts.Submitter.Submit(ctx, rs)
	if iotflow.ErrorCode(err) == iotflow.ENOTFOUND {
		return iotflow.Errorf(iotflow.EUNAUTHORIZED, "Invalid API key", "The device no longer exists")
	}
	return err
}
