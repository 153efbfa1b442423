package main

import "os"

var inTest = os.Getenv("IN_TEST")
