package providers

// KeyTTLTaker is implemented by providers that create keys with the
// lifetime a policy asks for (`key_ttl`, passed as plugin.Rotation.KeyTTL),
// so that a key rekey loses track of still dies by itself.
type KeyTTLTaker interface {
	AcceptsKeyTTL() bool
}
