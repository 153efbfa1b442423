package fixture

import "os"

var fixture = os.Getenv("FIXTURE_ONLY")
