//go:build unix

package redis_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rekeyhq/rekey/plugin"
	"github.com/rekeyhq/rekey/probes"
	rprobe "github.com/rekeyhq/rekey/probes/redis"
	"github.com/rekeyhq/rekey/providers"
	rprov "github.com/rekeyhq/rekey/providers/redis"
	"github.com/rekeyhq/rekey/secret"
	"github.com/rekeyhq/rekey/testenv/dbtest"
	"github.com/rekeyhq/rekey/testenv/vaulttest"
)

func newProvider(t *testing.T, s *dbtest.Redis, user, adminPW string) providers.Provider {
	t.Helper()
	pwFile := vaulttest.WriteFile(t, "admin.pw", adminPW+"\n")
	p, diags := rprov.New(vaulttest.Env(t, nil), vaulttest.Body(t, `host = "127.0.0.1"
port = `+strconv.Itoa(s.Port)+`
username = "`+user+`"
admin {
  username = "rekey_admin"
  password_file = "`+pwFile+`"
}`))
	if diags.HasErrors() {
		t.Fatalf("provider: %s", diags.Error())
	}
	return p
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestRedisDualPasswords(t *testing.T) {
	t.Parallel()
	s := dbtest.StartRedis(t)
	ctx, logs := vaulttest.Logger(t)
	if err := s.Client(t, "default", s.DefaultPassword).Do(ctx, "ACL", "SETUSER", "app", "on", ">seed-password-canary", "~app:*", "+get", "+set", "+ping").Err(); err != nil {
		t.Fatal(err)
	}
	p := newProvider(t, s, "app", s.AdminPassword)
	lister, deact := p.(providers.Lister), p.(providers.Deactivator)
	list, err := lister.List(ctx)
	if err != nil || len(list) != 1 || !strings.HasPrefix(list[0].ID, "app@") {
		t.Fatalf("List before rotating = %+v, %v", list, err)
	}
	seedID := list[0].ID

	k, err := p.Create(ctx, plugin.Rotation{ID: "rot-1", Policy: "cache", Generation: 1})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	pw := k.Value[rprov.FieldPassword].Reveal()
	if err := s.Login(ctx, "app", pw); err != nil {
		t.Fatalf("the new password does not log in: %v", err)
	}
	if err := s.Login(ctx, "app", "seed-password-canary"); err != nil {
		t.Fatalf("the old password stopped working at create: %v", err)
	}
	if uri := k.Value[rprov.FieldURI].Reveal(); uri != "redis://app:"+pw+"@127.0.0.1:"+strconv.Itoa(s.Port)+"/0" {
		t.Error("uri is not the expected shape")
	}
	list, err = lister.List(ctx)
	if err != nil || len(list) != 2 || list[1].ID != k.ID || list[1].RotationID != "rot-1" {
		t.Fatalf("List after create = %+v, %v", list, err)
	}

	if err := deact.Deactivate(ctx, seedID); err != nil {
		t.Fatal(err)
	}
	if err := s.Login(ctx, "app", "seed-password-canary"); err == nil {
		t.Fatal("a deactivated password logs in")
	}
	if list, _ := lister.List(ctx); len(list) != 2 || list[0].Status != plugin.KeyInactive {
		t.Fatalf("List with a deactivated key = %+v", list)
	}
	if err := deact.Activate(ctx, seedID); err != nil {
		t.Fatal(err)
	}
	if err := s.Login(ctx, "app", "seed-password-canary"); err != nil {
		t.Fatalf("the re-activated password: %v", err)
	}
	if err := p.Delete(ctx, seedID); err != nil {
		t.Fatal(err)
	}
	if err := s.Login(ctx, "app", "seed-password-canary"); err == nil {
		t.Fatal("a deleted password logs in")
	}
	if err := p.Delete(ctx, seedID); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	if err := p.Delete(ctx, k.ID); err == nil || !plugin.IsPermanent(err) {
		t.Fatalf("deleting the last password = %v, want a permanent refusal", err)
	}
	if err := s.Login(ctx, "app", pw); err != nil {
		t.Fatalf("the new password: %v", err)
	}

	// The probe logs in with the key.
	pr, diags := rprobe.New(vaulttest.Env(t, nil), vaulttest.Body(t, `query = ["GET", "app:config"]`))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if pr.(probes.Targeter).DefaultTarget() != probes.TargetKey {
		t.Error("the redis probe tests the key")
	}
	if err := pr.Check(ctx, k); err != nil {
		t.Fatalf("probe with the new key: %v", err)
	}
	bad := k
	bad.Value = secret.Fields{}
	for n, v := range k.Value {
		bad.Value[n] = v
	}
	bad.Value[rprov.FieldPassword] = secret.New("wrong-password-canary")
	perr := pr.Check(ctx, bad)
	if perr == nil || plugin.IsPermanent(perr) {
		t.Fatalf("probe with a wrong password = %v, want a retryable failure", perr)
	}
	deny, _ := rprobe.New(vaulttest.Env(t, nil), vaulttest.Body(t, `query = ["GET", "other:key"]`))
	derr := deny.Check(ctx, k)
	if derr == nil || !strings.Contains(derr.Error(), "NOPERM") {
		t.Fatalf("probe running a command the user may not = %v", derr)
	}
	vaulttest.AssertNoLeak(t, []string{logs.String(), perr.Error(), derr.Error()}, pw, "seed-password-canary", s.AdminPassword)
}

func TestRedisRefusals(t *testing.T) {
	t.Parallel()
	s := dbtest.StartRedis(t)
	ctx := ctxT(t)
	if err := s.Client(t, "default", s.DefaultPassword).Do(ctx, "ACL", "SETUSER", "offuser", "off", ">x").Err(); err != nil {
		t.Fatal(err)
	}
	rot := plugin.Rotation{ID: "r", Generation: 1}
	if _, err := newProvider(t, s, "missing", s.AdminPassword).Create(ctx, rot); !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing user: %v", err)
	}
	if _, err := newProvider(t, s, "offuser", s.AdminPassword).Create(ctx, rot); !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "is off") {
		t.Errorf("user off: %v", err)
	}
	_, err := newProvider(t, s, "offuser", "wrong-admin-canary").Create(ctx, rot)
	if !plugin.IsPermanent(err) || !strings.Contains(err.Error(), "admin credential was refused") {
		t.Errorf("wrong admin password: %v", err)
	}
	vaulttest.AssertNoLeak(t, []string{err.Error()}, "wrong-admin-canary")
	for body, want := range map[string]string{
		`username = "default"`:      "default user",
		`username = "a b"`:          "white space",
		`username = "a;FLUSHALL"`:   "injection",
		"username = \"a\"\ndb = -1": "db",
	} {
		_, diags := rprov.New(vaulttest.Env(t, nil), vaulttest.Body(t, "host = \"h\"\n"+body+"\nadmin {\n username = \"x\"\n password_env = \"E\"\n}"))
		if !diags.HasErrors() || !strings.Contains(diags.Error(), want) {
			t.Errorf("%s: %v, want %q", body, diags, want)
		}
	}
}
