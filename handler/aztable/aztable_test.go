package aztable_test

import (
	"context"
	"strings"
	"testing"

	"switchboard/handler/aztable"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/store"
	"switchboard/handler/store/storetest"
	"switchboard/handler/switchboard"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestAzuriteContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Table { return testenv.Table(t) })
}

func TestOpenRefusesDevelopmentStorageShortcut(t *testing.T) {
	_, err := aztable.Open(aztable.Options{ConnectionString: "UseDevelopmentStorage=true"})
	if got := switchboard.ErrorCode(err); got != switchboard.EINVALID {
		t.Fatalf("code = %q, want %q", got, switchboard.EINVALID)
	}
	if !strings.Contains(err.Error(), "explicit") {
		t.Errorf("error %q does not say what to do", err)
	}
}

func TestMalformedConnectionStringIsNotEchoed(t *testing.T) {
	secret := "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWs="
	_, err := aztable.Open(aztable.Options{ConnectionString: "AccountName=x;AccountKey=" + secret})
	if err == nil {
		return // the SDK accepted it; nothing to leak
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error leaks the account key: %v", err)
	}
}

func TestPingFailsWhenStorageIsDown(t *testing.T) {
	tables, err := aztable.Open(aztable.Options{ConnectionString: testenv.AzuriteConnectionString(testenv.FreePort(t))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20e9)
	defer cancel()
	if got := switchboard.ErrorCode(tables.Ping(ctx)); got != switchboard.EUNAVAILABLE {
		t.Errorf("Ping with nothing listening: code %q, want %q", got, switchboard.EUNAVAILABLE)
	}
	if err := testTables(t).Ping(ctx); err != nil {
		t.Errorf("Ping against Azurite: %v", err)
	}
}

func testTables(t *testing.T) store.Tables {
	tables, err := aztable.Open(aztable.Options{ConnectionString: testenv.Azurite(t)})
	if err != nil {
		t.Fatal(err)
	}
	return tables
}
