package presence

import (
	"testing"

	"switchboard/handler/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
