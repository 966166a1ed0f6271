package plugin

import "context"

// ProbeInfo tells a probe where in a rotation it runs, for probes whose
// check depends on it (a metrics query about the old key after commit).
// The engine attaches it to the context of every probe check.
type ProbeInfo struct {
	// RotationID is the rotation being checked.
	RotationID string
	// OldKeyID is the key being replaced; empty at the first rotation.
	OldKeyID string
	// Phase is the step the check belongs to: test, verify, soak or watch.
	Phase string
}

type probeInfoKey struct{}

// WithProbeInfo returns ctx carrying info.
func WithProbeInfo(ctx context.Context, info ProbeInfo) context.Context {
	return context.WithValue(ctx, probeInfoKey{}, info)
}

// ProbeInfoFrom returns the ProbeInfo attached to ctx, if any.
func ProbeInfoFrom(ctx context.Context) (ProbeInfo, bool) {
	info, ok := ctx.Value(probeInfoKey{}).(ProbeInfo)
	return info, ok
}
