// Command awsemu runs the awsemu AWS emulator until SIGINT or SIGTERM. It
// prints two JSON lines on stdout: {"url": ...} and the admin user's access
// key {"user": "admin", "access_key_id": ..., "secret_access_key": ...}.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rekeyhq/rekey/testenv/awsemu"
)

func main() {
	var opts awsemu.Options
	flag.StringVar(&opts.AccountID, "account", "123456789012", "AWS account id of every ARN")
	flag.StringVar(&opts.Region, "region", "us-east-1", "Secrets Manager region")
	flag.DurationVar(&opts.ConsistencyDelay, "consistency-delay", 0, "longest delay before an access key state change reaches authentication (0: the default, negative: none)")
	flag.DurationVar(&opts.UsageDelay, "usage-delay", 0, "longest delay before GetAccessKeyLastUsed shows a use (0: the default, negative: none)")
	flag.Uint64Var(&opts.Seed, "seed", 0, "seed of the delays' random spread (0: random)")
	flag.Parse()
	// Catch the signals before printing, so that whoever reads the output
	// may stop the server at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	s, err := awsemu.Start(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "awsemu:", err)
		os.Exit(1)
	}
	id, secret := s.AdminKey()
	enc := json.NewEncoder(os.Stdout)
	_ = enc.Encode(map[string]string{"url": s.URL()})
	_ = enc.Encode(map[string]string{"user": "admin", "access_key_id": id, "secret_access_key": secret})

	<-ctx.Done()
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "awsemu:", err)
		os.Exit(1)
	}
}
