// Command rekey is a secrets-rotation daemon: it creates a replacement key
// at a provider, writes it to sinks, confirms with live probes that the new
// key and its dependents work, and only then revokes the old key.
package main

import (
	"os"

	_ "github.com/rekeyhq/rekey/internal/standard"
)

func main() { os.Exit(Run(os.Args[1:], os.Stdout, os.Stderr)) }
