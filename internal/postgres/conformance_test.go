package postgres

import (
	"testing"

	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/storetest"
)

// TestStore runs the conformance suite that every backend passes.
func TestStore(t *testing.T) {
	// Fail once, not in every subtest, when the database is unreachable.
	adminExec(t, testURL(t), "SELECT 1")
	storetest.RunStoreTests(t, func(t *testing.T) iotflow.Store { return newTestStore(t) })
}
