package deploytest

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"switchboard/handler/internal/testenv"
)

// makePackage runs `make package` with its output in a fresh folder and
// returns the app folder (DIST/app).
func makePackage(t *testing.T) string {
	t.Helper()
	root := testenv.RepoRoot(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	dist := t.TempDir()
	cmd := exec.Command("make", "-C", root, "package", "DIST="+dist, "GO="+goBin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make package: %v\n%s", err, out)
	}
	return filepath.Join(dist, "app")
}

// TestPackage builds the deployable app folder with `make package` and checks
// what the Functions host (and azd) needs from it: a static linux/amd64
// handler, host.json pointing at it, every function folder, and a handler
// that starts from that folder and answers GET /api/health.
func TestPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the handler and starts it against Azurite")
	}
	app := makePackage(t)
	root := testenv.RepoRoot(t)
	handler := filepath.Join(app, "handler")

	t.Run("handler is a static linux/amd64 executable", func(t *testing.T) {
		checkLinuxAMD64(t, handler)
	})

	t.Run("host.json", func(t *testing.T) {
		got := readFile(t, filepath.Join(app, "host.json"))
		if want := readFile(t, filepath.Join(root, "host.json")); !bytes.Equal(got, want) {
			t.Errorf("packaged host.json differs from the repository's")
		}
		var host struct {
			CustomHandler struct {
				Description struct {
					DefaultExecutablePath string `json:"defaultExecutablePath"`
				} `json:"description"`
			} `json:"customHandler"`
		}
		if err := json.Unmarshal(got, &host); err != nil {
			t.Fatal(err)
		}
		if p := host.CustomHandler.Description.DefaultExecutablePath; p != "handler" {
			t.Errorf("customHandler.description.defaultExecutablePath = %q, want %q (the binary make package builds)", p, "handler")
		}
	})

	t.Run("every function folder", func(t *testing.T) {
		sources, err := filepath.Glob(filepath.Join(root, "functions", "*", "function.json"))
		if err != nil {
			t.Fatal(err)
		}
		if len(sources) == 0 {
			t.Fatal("no functions/*/function.json in the repository")
		}
		for _, src := range sources {
			name := filepath.Base(filepath.Dir(src))
			got, err := os.ReadFile(filepath.Join(app, name, "function.json"))
			if err != nil {
				t.Errorf("function %s: %v", name, err)
				continue
			}
			if !bytes.Equal(got, readFile(t, src)) {
				t.Errorf("function %s: packaged function.json differs from functions/%s/function.json", name, name)
			}
		}
	})

	t.Run("handler serves health from the folder", func(t *testing.T) {
		port := testenv.FreePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		// A clean environment: only what the Functions host would give it,
		// and the local-development choices (Azurite, API_AUTH=none).
		p := testenv.StartProcess(t, addr, 60*time.Second, "env", "-i",
			"PATH="+os.Getenv("PATH"),
			"HOME="+t.TempDir(),
			fmt.Sprintf("FUNCTIONS_CUSTOMHANDLER_PORT=%d", port),
			"TABLES_CONNECTION_STRING="+testenv.Azurite(t),
			"API_AUTH=none",
			handler)
		defer p.Stop()
		status, body := get(t, "http://"+addr+"/api/health")
		if status != http.StatusOK {
			t.Errorf("GET /api/health = %d %s, want 200\nhandler output:\n%s", status, body, p.Output())
		}
	})

	t.Run("local runner starts from the folder", func(t *testing.T) {
		runner := filepath.Join(t.TempDir(), "localrunner")
		build := exec.Command("go", "build", "-o", runner, "./handler/dev/cmd/localrunner")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build ./handler/dev/cmd/localrunner: %v\n%s", err, out)
		}
		port := testenv.FreePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		azurite := testenv.Azurite(t)
		env := []string{
			"PATH=" + os.Getenv("PATH"),
			"HOME=" + t.TempDir(),
			"FUNCTIONS_WORKER_RUNTIME=custom",
			"AzureWebJobsStorage=" + azurite,
			"TABLES_CONNECTION_STRING=" + azurite,
			"API_AUTH=none",
		}
		// No local.settings.json in a package: every %SETTING% the
		// function.json files name gets the handler's own default.
		env = append(env, referencedSettings(t, app, filepath.Join(root, "handler", "config", "config.go"))...)
		// The runner runs the packaged handler (host.json's defaultExecutablePath
		// under -root): nothing is built from the repository, whose absence
		// the temporary working directory of StartProcess ensures.
		args := append([]string{"-i"}, env...)
		args = append(args, runner, "-root", app, "-port", fmt.Sprint(port), "-no-timers")
		p := testenv.StartProcess(t, addr, 60*time.Second, "env", args...)
		defer p.Stop()
		status, body := getUntil(t, "http://"+addr+"/api/health", http.StatusOK, 60*time.Second)
		if status != http.StatusOK {
			t.Fatalf("GET /api/health through the runner = %d %s, want 200\nrunner output:\n%s", status, body, p.Output())
		}
		if out := p.Output(); !strings.Contains(out, handler) {
			t.Errorf("the runner did not start the packaged handler %s:\n%s", handler, out)
		}
		status, body = get(t, "http://"+addr+"/admin/functions")
		if status != http.StatusOK {
			t.Fatalf("GET /admin/functions = %d %s", status, body)
		}
		var listed []struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal([]byte(body), &listed); err != nil {
			t.Fatalf("GET /admin/functions: %v\n%s", err, body)
		}
		names := map[string]bool{}
		for _, f := range listed {
			names[f.Name] = true
		}
		for name := range readFunctions(t, app) {
			if !names[name] {
				t.Errorf("the runner did not load function %s from the package (it lists %s)", name, body)
			}
		}
	})
}

// referencedSettings returns NAME=default for every %NAME% in the
// function.json files under app, the default being the handler's (config.go).
func referencedSettings(t testing.TB, app, configGo string) []string {
	t.Helper()
	defaults, err := configDefaults(configGo)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var env []string
	for fn, bindings := range readFunctions(t, app) {
		for _, b := range bindings {
			for _, v := range b {
				s, _ := v.(string)
				for _, m := range percentSetting.FindAllStringSubmatch(s, -1) {
					if seen[m[1]] {
						continue
					}
					def, ok := defaults[m[1]]
					if !ok {
						t.Fatalf("function %s names %%%s%%, which has no literal default in handler/config/config.go", fn, m[1])
					}
					seen[m[1]] = true
					env = append(env, m[1]+"="+def)
				}
			}
		}
	}
	return env
}

// checkLinuxAMD64 checks the ELF header, the absence of a dynamic loader
// (CGO off) and the Go build settings of the executable at path.
func checkLinuxAMD64(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&0o111 == 0 {
		t.Errorf("%s mode = %v, want executable", path, st.Mode())
	}
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s is not an ELF executable: %v", path, err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		t.Errorf("ELF class %v machine %v, want ELFCLASS64 EM_X86_64", f.Class, f.Machine)
	}
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		t.Errorf("ELF OS/ABI %v, want System V or Linux", f.OSABI)
	}
	if f.Type != elf.ET_EXEC {
		t.Errorf("ELF type %v, want ET_EXEC", f.Type)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Error("the handler asks for a dynamic loader: want a static binary (CGO_ENABLED=0)")
		}
	}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatalf("read Go build info: %v", err)
	}
	want := map[string]string{"GOOS": "linux", "GOARCH": "amd64", "CGO_ENABLED": "0"}
	for _, s := range info.Settings {
		if w, ok := want[s.Key]; ok {
			if s.Value != w {
				t.Errorf("build setting %s = %s, want %s", s.Key, s.Value, w)
			}
			delete(want, s.Key)
		}
	}
	for k, w := range want {
		t.Errorf("build setting %s missing, want %s", k, w)
	}
}

// TestAzureYamlDeploysThePackage ties azure.yaml to make package: azd packs
// the folder the Makefile writes.
func TestAzureYamlDeploysThePackage(t *testing.T) {
	text := string(readFile(t, filepath.Join(testenv.RepoRoot(t), "azure.yaml")))
	for _, want := range []string{
		"host: function",
		"language: custom",
		"dist: dist/app",
		"run: make package",
		"provider: bicep",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("azure.yaml lacks %q", want)
		}
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// getUntil fetches url until it answers want or wait has passed, and returns
// the last answer.
func getUntil(t testing.TB, url string, want int, wait time.Duration) (int, string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		status, body := get(t, url)
		if status == want || time.Now().After(deadline) {
			return status, body
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// get fetches url, retrying for a few seconds while the server comes up.
func get(t testing.TB, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, string(body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
