package localrunner

import "os"

var runner = os.Getenv("RUNNER_PACKAGE_ONLY")
