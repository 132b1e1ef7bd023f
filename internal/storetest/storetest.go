// Package storetest is the conformance suite of iotflow.Store: every storage
// backend runs RunStoreTests, so that all of them keep the contract written
// in the Store interface's doc comments, not the quirks of one database.
package storetest

import (
	"testing"

	"github.com/iotflow/iotflow/internal/iotflow"
)

// RunStoreTests runs the conformance suite. newStore must return a fresh,
// empty, migrated store and register its own cleanup; each subtest calls it.
func RunStoreTests(t *testing.T, newStore func(t *testing.T) iotflow.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s iotflow.Store)
	}{
		{"CreateDevice", testCreateDevice},
		{"CreateDeviceDuplicateName", testCreateDeviceDuplicateName},
		{"CreateDeviceReusedKeyHash", testCreateDeviceReusedKeyHash},
		{"DeviceNotFound", testDeviceNotFound},
		{"DeviceByKeyHash", testDeviceByKeyHash},
		{"ListDevices", testListDevices},
		{"UpdateDevice", testUpdateDevice},
		{"UpdateDeviceName", testUpdateDeviceName},
		{"DeleteDevice", testDeleteDevice},
		{"TouchDevices", testTouchDevices},
		{"MarkOffline", testMarkOffline},
		{"CreateAPIKey", testCreateAPIKey},
		{"APIKeys", testAPIKeys},
		{"RevokeAPIKey", testRevokeAPIKey},
		{"ExpireAPIKey", testExpireAPIKey},
		{"RecordKeyUsage", testRecordKeyUsage},
		{"DeleteDeviceKeys", testDeleteDeviceKeys},
		{"ConcurrentKeyUsage", testConcurrentKeyUsage},
		{"InsertReadings", testInsertReadings},
		{"InsertReadingsUnknownDevice", testInsertReadingsUnknownDevice},
		{"MessageIDs", testMessageIDs},
		{"ConcurrentMessageIDs", testConcurrentMessageIDs},
		{"ListReadings", testListReadings},
		{"CountReadings", testCountReadings},
		{"ReadingStats", testReadingStats},
		{"Dashboard", testDashboard},
		{"DashboardEmpty", testDashboardEmpty},
		{"RecentReadingsAcrossHours", testRecentReadingsAcrossHours},
		{"AdminTokens", testAdminTokens},
		{"CancelledContext", testCancelledContext},
		{"ConcurrentInserts", testConcurrentInserts},
		{"DeleteDeviceWhileWriting", testDeleteDeviceWhileWriting},
		{"ListReadingRanges", testListReadingRanges},
		{"CursorWalkWhileWriting", testCursorWalkWhileWriting},
		{"RollupWatermark", testRollupWatermark},
		{"ApplyRollupsMerges", testApplyRollupsMerges},
		{"DeleteReadingsBefore", testDeleteReadingsBefore},
		{"CommandLife", testCommandLife},
		{"CommandAnswers", testCommandAnswers},
		{"CommandSweep", testCommandSweep},
		{"ShadowVersions", testShadowVersions},
		{"ShadowConcurrentSaves", testShadowConcurrentSaves},
		{"Ping", testPing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, newStore(t))
		})
	}
}

func testPing(t *testing.T, s iotflow.Store) {
	ok(t, "Ping", s.Ping(t.Context()))
}
