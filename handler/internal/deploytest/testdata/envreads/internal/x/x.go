package x

import "os"

var internal = os.Getenv("INTERNAL_ONLY")
