package presence

import (
	"testing"

	"switchboard/handler/internal/testenv"
)

func mainWithTestenv(m *testing.M) { testenv.Main(m) }

// backends is testenv.Backends (memory tables and Azurite); the name stays
// while the poller's tests are split (issue 9 item 3).
var backends = testenv.Backends
