package httpapi_test

import (
	"testing"

	"github.com/iotflow/iotflow/internal/iotflow"
	"github.com/iotflow/iotflow/internal/testdb"
)

func sqliteStore(t *testing.T) iotflow.Store { return testdb.SQLite(t) }

func iotflowFilterAll() iotflow.ReadingFilter { return iotflow.ReadingFilter{} }
