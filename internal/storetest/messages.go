package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// testMessageIDs: a device's message id is stored once; repeats, in a later
// batch or in the same one, get the stored reading's id and timestamp.
func testMessageIDs(t *testing.T, s iotflow.Store) {
	ctx := t.Context()
	a := createSimple(t, s, "a")
	b := createSimple(t, s, "b")

	first := reading(a.ID, at(time.Minute), "sensor")
	first.MessageID = "m-1"
	insert(t, s, first)
	if first.ID == 0 || first.Duplicate {
		t.Fatalf("first reading: id %d duplicate %v", first.ID, first.Duplicate)
	}

	retry := reading(a.ID, at(2*time.Minute), "sensor")
	retry.MessageID = "m-1"
	sameBatch1 := reading(a.ID, at(3*time.Minute), "sensor")
	sameBatch1.MessageID = "m-2"
	sameBatch2 := reading(a.ID, at(4*time.Minute), "sensor")
	sameBatch2.MessageID = "m-2"
	otherDevice := reading(b.ID, at(5*time.Minute), "sensor")
	otherDevice.MessageID = "m-1" // ids are per device
	plain := reading(a.ID, at(6*time.Minute), "sensor")
	insert(t, s, retry, sameBatch1, sameBatch2, otherDevice, plain)

	if !retry.Duplicate || retry.ID != first.ID || !retry.Timestamp.Equal(first.Timestamp) {
		t.Errorf("retry: id %d dup %v ts %v; want id %d ts %v", retry.ID, retry.Duplicate, retry.Timestamp, first.ID, first.Timestamp)
	}
	if sameBatch1.Duplicate || !sameBatch2.Duplicate || sameBatch2.ID != sameBatch1.ID || !sameBatch2.Timestamp.Equal(sameBatch1.Timestamp) {
		t.Errorf("repeat within a batch: %+v %+v", sameBatch1, sameBatch2)
	}
	if otherDevice.Duplicate || otherDevice.ID == first.ID || plain.Duplicate {
		t.Errorf("other device or plain reading taken for a duplicate")
	}
	if sameBatch1.ID >= otherDevice.ID || otherDevice.ID >= plain.ID {
		t.Errorf("ids do not increase in slice order: %d %d %d", sameBatch1.ID, otherDevice.ID, plain.ID)
	}

	// Counters count stored rows only.
	if got := getDevice(t, s, a.ID).TelemetryCount; got != 3 {
		t.Errorf("device a TelemetryCount = %d, want 3", got)
	}
	wantCount(t, s, iotflow.ReadingFilter{DeviceID: a.ID}, 3)
	wantCount(t, s, iotflow.ReadingFilter{DeviceID: a.ID, DataType: "sensor"}, 3)

	list, err := s.ListReadings(ctx, iotflow.ReadingFilter{DeviceID: a.ID, Limit: 10})
	ok(t, "ListReadings", err)
	msgs := map[string]int{}
	for _, r := range list {
		msgs[r.MessageID]++
	}
	if msgs["m-1"] != 1 || msgs["m-2"] != 1 || msgs[""] != 1 {
		t.Errorf("stored message ids %v", msgs)
	}

	// A batch of only duplicates stores nothing and still succeeds.
	again := reading(a.ID, at(7*time.Minute), "sensor")
	again.MessageID = "m-2"
	insert(t, s, again)
	if !again.Duplicate || again.ID != sameBatch1.ID {
		t.Errorf("all-duplicate batch: %+v", again)
	}
	// A duplicate naming a deleted device fails like any reading would.
	gone := createSimple(t, s, "gone")
	g := reading(gone.ID, at(time.Minute), "sensor")
	g.MessageID = "x"
	insert(t, s, g)
	_, err = s.DeleteDevice(ctx, gone.ID)
	ok(t, "DeleteDevice", err)
	g2 := reading(gone.ID, at(time.Minute), "sensor")
	g2.MessageID = "x"
	wantCode(t, "InsertReadings on a deleted device", s.InsertReadings(ctx, []*iotflow.Reading{g2}), iotflow.ENOTFOUND)
}

// testConcurrentMessageIDs: concurrent batches carrying the same message id
// store it once and all learn the same id.
func testConcurrentMessageIDs(t *testing.T, s iotflow.Store) {
	d := createSimple(t, s, "racer")
	const n = 8
	ids := make([]int64, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := reading(d.ID, at(time.Minute), "sensor")
			r.MessageID = "same"
			other := reading(d.ID, at(time.Minute), "sensor")
			other.MessageID = fmt.Sprintf("own-%d", i)
			errs <- s.InsertReadings(t.Context(), []*iotflow.Reading{other, r})
			ids[i] = r.ID
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		ok(t, "concurrent InsertReadings", err)
	}
	for _, id := range ids {
		if id != ids[0] || id == 0 {
			t.Fatalf("ids %v: want one id for one message", ids)
		}
	}
	if got := getDevice(t, s, d.ID).TelemetryCount; got != n+1 {
		t.Errorf("TelemetryCount = %d, want %d", got, n+1)
	}
}
