package deploytest

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"switchboard/handler/internal/testenv"
)

// TestInfraBicepParses parses every Bicep file under infra/ and fails on the
// first syntax error, naming file, line and column.
func TestInfraBicepParses(t *testing.T) {
	root := testenv.RepoRoot(t)
	var want []string
	err := filepath.WalkDir(filepath.Join(root, "infra"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".bicep") {
			want = append(want, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 {
		t.Fatal("no .bicep files under infra/")
	}

	r := infraReport(t)

	var got []string
	for _, f := range r.Files {
		got = append(got, f.File)
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("bicep-check parsed\n%s\nwant every .bicep file under infra/:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestBicepCheckRejectsSyntaxErrors proves the check fails on broken Bicep
// (and passes the valid control file): each broken snippet in
// testdata/bicep is reported at the line of its mistake.
func TestBicepCheckRejectsSyntaxErrors(t *testing.T) {
	tests := []struct {
		file     string
		wantCode int
		wantLine string // "file:line:" expected in stderr
	}{
		{file: "valid.bicep", wantCode: 0},
		{file: "unclosed_object.bicep", wantCode: 1, wantLine: "unclosed_object.bicep:10:"},
		{file: "missing_value.bicep", wantCode: 1, wantLine: "missing_value.bicep:3:"},
		{file: "stray_token.bicep", wantCode: 1, wantLine: "stray_token.bicep:3:"},
		{file: "bad_for.bicep", wantCode: 1, wantLine: "bad_for.bicep:4:"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path, err := filepath.Abs(filepath.Join("testdata", "bicep", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runBicepCheck(t, path)
			if code != tt.wantCode {
				t.Fatalf("exit code = %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout, stderr)
			}
			if tt.wantLine != "" && !strings.Contains(stderr, tt.wantLine) {
				t.Errorf("stderr = %q, want a syntax error at %q", stderr, tt.wantLine)
			}
		})
	}
}
