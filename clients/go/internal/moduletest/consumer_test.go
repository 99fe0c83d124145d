// What an app that depends on the SDK gets: a fresh module (its own
// go.mod, outside this repository's) imports the sovereign and passkey
// packages, builds, runs, and its go.sum holds nothing of the Sovereign
// server: not its module, and none of the modules only the server needs
// (huma, bun, SQLite, go-webauthn, pgx, ...).
package moduletest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

const serverModule = "github.com/sovereign-im/sovereign"
const sdkModule = "github.com/sovereign-im/sovereign/clients/go"

// serverOnly lists modules the server is known to need and an SDK user
// must never be made to download, whether or not the server's go.mod is at
// hand to compute the full set.
var serverOnly = []string{
	"github.com/danielgtaylor/huma/v2",
	"github.com/uptrace/bun",
	"modernc.org/sqlite",
	"github.com/go-webauthn/webauthn",
	"github.com/jackc/pgx/v5",
	"github.com/pb33f/libopenapi",
}

const app = `package main

import (
	"context"
	"fmt"

	"github.com/sovereign-im/sovereign/clients/go/passkey"
	"github.com/sovereign-im/sovereign/clients/go/sovereign"
)

func main() {
	s, err := sovereign.NewSession("https://chat.example.org", "token")
	if err != nil {
		panic(err)
	}
	st := s.Stream(context.Background(), sovereign.StreamOptions{})
	_ = st.Close()
	a, err := passkey.New("https://chat.example.org", passkey.Options{})
	fmt.Println(a.RPID(), err, sovereign.NewIdempotencyKey() != "")
}
`

func sdkDir(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func goCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return goCmdMod(t, dir, "mod", args...)
}

// goCmdMod runs the go command with -mod=mode: "mod" in the fresh module,
// "readonly" in this repository's modules (a test must not rewrite them).
func goCmdMod(t *testing.T, dir, mode string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod="+mode)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// sumModules is the set of module paths a go.sum names.
func sumModules(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mods := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) == 3 {
			mods[fields[0]] = true
		}
	}
	return mods
}

// goModRequires lists every module in the module graph of the module in
// dir (`go list -m all`), the main module left out.
func goModRequires(t *testing.T, dir string) []string {
	t.Helper()
	out := goCmdMod(t, dir, "readonly", "list", "-m", "-f", "{{if not .Main}}{{.Path}}{{end}}", "all")
	return strings.Fields(out)
}

// forbidden returns the modules of sum that an SDK user must not get:
// the server's module and every module in serverOnly or in serverMods
// that the SDK's own module graph (sdkMods) does not contain.
func forbidden(sum map[string]bool, serverMods, sdkMods []string) []string {
	inSDK := map[string]bool{}
	for _, m := range sdkMods {
		inSDK[m] = true
	}
	bad := map[string]bool{}
	if sum[serverModule] {
		bad[serverModule] = true
	}
	for _, m := range append(append([]string(nil), serverOnly...), serverMods...) {
		if sum[m] && !inSDK[m] {
			bad[m] = true
		}
	}
	out := make([]string, 0, len(bad))
	for m := range bad {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

func TestForbiddenFindsServerModules(t *testing.T) {
	sum := map[string]bool{"github.com/google/uuid": true, "github.com/danielgtaylor/huma/v2": true, serverModule: true, "example.com/x": true}
	got := forbidden(sum, []string{"github.com/google/uuid", "example.com/x"}, []string{"github.com/google/uuid"})
	want := []string{"example.com/x", "github.com/danielgtaylor/huma/v2", serverModule}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("forbidden = %v, want %v", got, want)
	}
}

func TestFreshModuleGetsNoServerDependency(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a fresh module with the go command")
	}
	sdk := sdkDir(t)
	dir := t.TempDir()
	gomod := "module example.com/sovereign-sdk-user\n\ngo 1.26\n\nrequire " + sdkModule + " v1.0.0\n\nreplace " + sdkModule + " => " + sdk + "\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	goCmd(t, dir, "mod", "tidy")
	goCmd(t, dir, "build", "-o", filepath.Join(dir, "app"), ".")
	out := goCmd(t, dir, "run", ".")
	if !strings.Contains(out, "chat.example.org <nil> true") {
		t.Fatalf("the app ran with: %s", out)
	}

	// No package of the server is compiled into the app.
	for _, p := range strings.Fields(goCmd(t, dir, "list", "-deps", ".")) {
		if strings.HasPrefix(p, serverModule+"/") && !strings.HasPrefix(p, sdkModule+"/") {
			t.Errorf("the app builds server package %s", p)
		}
	}

	sum := sumModules(t, filepath.Join(dir, "go.sum"))
	if len(sum) == 0 {
		t.Fatal("empty go.sum: the check would prove nothing")
	}
	var serverMods []string
	if _, err := os.Stat(filepath.Join(sdk, "..", "..", "go.mod")); err == nil {
		serverMods = goModRequires(t, filepath.Join(sdk, "..", ".."))
	} else {
		t.Log("the server's go.mod is not here: checking the known server-only modules only")
	}
	sdkMods := goModRequires(t, sdk)
	if bad := forbidden(sum, serverMods, sdkMods); len(bad) > 0 {
		t.Fatalf("an SDK user's go.sum holds server dependencies: %v", bad)
	}
	names := make([]string, 0, len(sum))
	for m := range sum {
		names = append(names, m)
	}
	sort.Strings(names)
	t.Logf("go.sum of an SDK user names %d modules: %s", len(names), strings.Join(names, " "))
}
