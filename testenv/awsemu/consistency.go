package awsemu

import (
	"math/rand/v2"
	"os"
	"strconv"
	"time"
)

// Defaults of the emulator's lateness. AWS documents no bound for either;
// the defaults are short enough for tests on the real clock and long
// enough that code which assumes instant effect fails.
const (
	// DefaultConsistencyDelay bounds how long an access key state change
	// takes to reach authentication when Options.ConsistencyDelay is zero.
	DefaultConsistencyDelay = 2 * time.Second
	// DefaultUsageDelay bounds how late GetAccessKeyLastUsed shows a use
	// when Options.UsageDelay is zero.
	DefaultUsageDelay = 10 * time.Second
	// Immediate, as Options.ConsistencyDelay or Options.UsageDelay, turns
	// that lateness off. Tests that set it say why.
	Immediate time.Duration = -1
)

// SeedEnv is the environment variable that fixes the seed of the random
// spread when Options.Seed is zero, to repeat a failing run.
const SeedEnv = "REKEY_AWSEMU_SEED"

// authState is what authentication sees of an access key.
type authState int

const (
	authAbsent   authState = iota // never issued here, or not yet propagated
	authActive                    // requests signed with it are accepted
	authInactive                  // Inactive: InvalidClientTokenId
	authDeleted                   // deleted: InvalidClientTokenId
)

// authChange is one access key state change and the time it reaches
// authentication.
type authChange struct {
	at    time.Time
	state authState
}

// use is one authenticated request and the time GetAccessKeyLastUsed
// shows it.
type use struct {
	at, visibleAt   time.Time
	service, region string
}

// spread draws a delay from [max/2, max] with the server's seeded
// generator; a negative max (Immediate) is no delay.
func (s *Server) spread(maxDelay time.Duration) time.Duration {
	if maxDelay <= 0 {
		return 0
	}
	half := maxDelay / 2
	return half + time.Duration(s.rng.Int64N(int64(maxDelay-half)+1))
}

// change records a key state change made at now. IAM User Guide,
// "Troubleshoot IAM: Changes that I make are not always immediately
// visible" (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency):
// IAM is eventually consistent, so a new key may be refused, and a
// deactivated or deleted key accepted, for a while after the call
// returned. Changes reach authentication in the order they were made.
func (s *Server) change(k *accessKey, now time.Time, st authState, delayed bool) {
	at := now
	if delayed {
		at = now.Add(s.spread(s.opts.ConsistencyDelay))
	}
	if n := len(k.changes); n > 0 && at.Before(k.changes[n-1].at) {
		at = k.changes[n-1].at
	}
	k.changes = append(k.changes, authChange{at: at, state: st})
}

// authAt is the key's state as authentication sees it at now.
func (k *accessKey) authAt(now time.Time) authState {
	st := authAbsent
	for _, c := range k.changes {
		if c.at.After(now) {
			break
		}
		st = c.state
	}
	return st
}

// recordUse notes an authenticated request. IAM API Reference,
// GetAccessKeyLastUsed (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetAccessKeyLastUsed.html)
// reports the most recent use; IAM User Guide, "Refine permissions using
// last accessed information" (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_last-accessed.html):
// "recent activity usually appears within four hours", so a use is shown
// only after a delay.
func (s *Server) recordUse(k *accessKey, now time.Time, service, region string) {
	k.LastUsed, k.LastUsedService, k.LastUsedRegion = now, service, region
	k.pending = append(k.pending, use{at: now, visibleAt: now.Add(s.spread(s.opts.UsageDelay)), service: service, region: region})
}

// reportedUse is the last use GetAccessKeyLastUsed shows at now: the
// latest use that became visible, its date rounded down to the minute.
// The API reference's example shows "LastUsedDate": "2015-06-16T22:45:00Z":
// AWS reports last use to the minute.
func (k *accessKey) reportedUse(now time.Time) (use, bool) {
	kept := k.pending[:0]
	for _, u := range k.pending {
		if u.visibleAt.After(now) {
			kept = append(kept, u)
			continue
		}
		if u.at.After(k.reported.at) {
			k.reported = u
		}
	}
	k.pending = kept
	if k.reported.at.IsZero() {
		return use{}, false
	}
	u := k.reported
	u.at = u.at.UTC().Truncate(time.Minute)
	return u, true
}

// seed returns opts.Seed, else $REKEY_AWSEMU_SEED, else a random seed.
func seed(opts Options) uint64 {
	if opts.Seed != 0 {
		return opts.Seed
	}
	if v, err := strconv.ParseUint(os.Getenv(SeedEnv), 10, 64); err == nil && v != 0 {
		return v
	}
	return rand.Uint64() | 1
}
