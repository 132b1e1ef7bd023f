package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/iotflow/iotflow/internal/fleet"
	"github.com/iotflow/iotflow/internal/iotflow"
)

// sampleDevices are the reference service's three sample devices.
var sampleDevices = []iotflow.NewDevice{
	{Name: "Temperature Sensor 001", Description: "Sample temperature sensor", DeviceType: "sensor",
		Location: "Living Room", FirmwareVersion: "1.2.3", HardwareVersion: "v2.1"},
	{Name: "Smart Door Lock", Description: "Sample smart lock", DeviceType: "actuator",
		Location: "Front Door", FirmwareVersion: "2.0.1", HardwareVersion: "v1.0"},
	{Name: "Security Camera 01", Description: "Sample security camera", DeviceType: "camera",
		Location: "Front Yard", FirmwareVersion: "3.1.0", HardwareVersion: "v3.2"},
}

func runInit(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	text := "Usage: iotflow init\n\nApplies migrations and creates the three sample devices, printing each new\n" +
		"device's API key once. Devices that exist already are left as they are.\n"
	if err := parseFlags(fs, e, args, text); err != nil {
		return helpOK(err)
	}
	cfg, err := loadConfig(e)
	if err != nil {
		return err
	}
	db, desc, _, err := openDatabase(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	svc := fleet.New(db, fleet.Options{})

	fmt.Fprintf(e.stdout, "Database: %s\n\n", desc)
	firstKey := ""
	for _, n := range sampleDevices {
		d, key, err := svc.Register(ctx, n)
		if iotflow.ErrorCode(err) == iotflow.ECONFLICT {
			fmt.Fprintf(e.stdout, "  %-24s exists already (its API key was shown when it was created)\n", n.Name)
			continue
		} else if err != nil {
			return fmt.Errorf("create %q: %w", n.Name, err)
		}
		fmt.Fprintf(e.stdout, "  %-24s id %-4d API key %s\n", d.Name, d.ID, key)
		if firstKey == "" {
			firstKey = key
		}
	}
	if firstKey == "" {
		fmt.Fprintln(e.stdout, "\nNothing to do: the sample devices exist.")
		return nil
	}
	fmt.Fprintf(e.stdout, "\nThe API keys are shown only this once; they are stored hashed. Try one:\n\n"+
		"  curl -X POST http://localhost:%d/api/v1/devices/telemetry \\\n"+
		"    -H 'Content-Type: application/json' -H 'X-API-Key: %s' \\\n"+
		"    -d '{\"data\": {\"temperature\": 22.5, \"humidity\": 60}}'\n", cfg.Port, firstKey)
	return nil
}
