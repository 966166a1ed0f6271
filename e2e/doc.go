// Package e2e holds rekey's end-to-end tests: complete rotations run by
// the engine (rotator), configured by HCL policies that the real loader
// (policies) decodes with the standard plugin set, against real services:
// the HashiCorp Vault server built by testenv/vault, the project's AWS
// emulator (testenv/awsemu), and dependents played by net/http servers on
// 127.0.0.1 that read the credential from where rekey put it and use it.
//
// The package has no non-test code. Its tests cover an IAM key rotated
// into Secrets Manager and Vault KV (with eventual consistency, a full
// provider, a failing dependent, and a crash at every failpoint), an
// AppRole secret id rotated through Vault KV (also crashed at every
// failpoint), a Vault sealed in the middle
// of a rotation, an Express Gateway key-auth credential (the real gateway
// from testenv/expressgw, with the http provider; an application calls
// through the gateway during rotations and a crash at every failpoint and
// counts refused calls), a Kong credential (the kong provider against
// testenv/kongemu, likewise), and a leak check: every log line, event, error and the
// journal file are searched for every secret the test knows. Benchmarks
// report rotations per second and the mean latency of each step.
//
// Run them with the Vault binary:
//
//	export REKEY_VAULT_BIN="$(testenv/vault/build.sh)"
//	go test ./e2e/
//
// The gateway tests need REKEY_EXPRESSGW_DIR="$(sh testenv/expressgw/install.sh)".
//
// Without REKEY_VAULT_BIN the tests that need Vault are skipped (failed
// when REKEY_TEST_REQUIRE_SERVERS=1). See the README, "Development".
package e2e
