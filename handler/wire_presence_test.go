package main

import (
	"testing"
	"time"
)

func TestPollBudget(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 7, 0, time.UTC)
	cases := []struct {
		name     string
		schedule string
		want     time.Duration
		wantErr  bool
	}{
		{name: "default, every 30 s: four fifths", schedule: "*/30 * * * * *", want: 24 * time.Second},
		{name: "every 10 s", schedule: "*/10 * * * * *", want: 8 * time.Second},
		{name: "every 5 s: at least 5 s", schedule: "*/5 * * * * *", want: 5 * time.Second},
		{name: "every minute, five fields", schedule: "* * * * *", want: 48 * time.Second},
		{name: "every 2 minutes", schedule: "0 */2 * * * *", want: 96 * time.Second},
		{name: "hourly: at most 4 min", schedule: "0 0 * * * *", want: 4 * time.Minute},
		{name: "descriptor", schedule: "@every 1m", want: 48 * time.Second},
		{name: "not a schedule", schedule: "every 30 seconds", wantErr: true},
		{name: "empty", schedule: "", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pollBudget(tc.schedule, now)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("pollBudget(%q) = %v, want an error", tc.schedule, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("pollBudget(%q) = %v, %v; want %v", tc.schedule, got, err, tc.want)
			}
		})
	}
}
