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

// A connection string the SDK refuses is refused with EINVALID, and the
// error never repeats any part of it (the account key above all).
func TestMalformedConnectionStringIsNotEchoed(t *testing.T) {
	secret := "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWs="
	cases := []struct{ name, cs string }{
		{"no account name", "AccountKey=" + secret},
		{"no account name, with endpoint", "AccountKey=" + secret + ";TableEndpoint=http://127.0.0.1:1/devstoreaccount1"},
		{"key not base64", "DefaultEndpointsProtocol=http;AccountName=x;AccountKey=%%%" + secret + ";TableEndpoint=http://127.0.0.1:1/x"},
		{"not name=value", "garbage " + secret},
	}
	for _, c := range cases {
		tables, err := aztable.Open(aztable.Options{ConnectionString: c.cs})
		if err == nil || tables != nil {
			t.Errorf("%s: Open accepted a malformed connection string", c.name)
			continue
		}
		if got := switchboard.ErrorCode(err); got != switchboard.EINVALID {
			t.Errorf("%s: code %q, want %q", c.name, got, switchboard.EINVALID)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "AccountKey") || strings.Contains(err.Error(), "garbage") {
			t.Errorf("%s: error repeats the connection string: %v", c.name, err)
		}
		if !strings.Contains(err.Error(), "malformed") {
			t.Errorf("%s: error %q does not say the settings are malformed", c.name, err)
		}
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
