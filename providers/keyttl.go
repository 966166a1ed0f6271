package providers

import "time"

// KeyTTLTaker is implemented by providers that create keys with the
// lifetime a policy asks for (`key_ttl`, passed as plugin.Rotation.KeyTTL),
// so that a key rekey loses track of still dies by itself.
type KeyTTLTaker interface {
	AcceptsKeyTTL() bool
}

// KeyTTLChecker is implemented by a KeyTTLTaker that can honour only some
// lifetimes (whole days, a largest value, not with a lifetime of its own
// configured). CheckKeyTTL returns why ttl cannot be honoured, or nil;
// validate reports the error at the policy's key_ttl.
type KeyTTLChecker interface {
	CheckKeyTTL(ttl time.Duration) error
}
