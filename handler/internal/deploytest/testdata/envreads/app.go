package main

import "os"

var direct = os.Getenv("DIRECT_READ")

func dynamic(name string) string { return os.Getenv(name) }
