package sub

import sys "os"

func Lookup() bool {
	_, ok := sys.LookupEnv("LOOKED_UP")
	return ok
}
