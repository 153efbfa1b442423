package main

import "os"

var runner = os.Getenv("RUNNER_ONLY")
