// Package testnginx writes the nginx configuration the tests run: the
// shipped deploy/nginx/modellab.conf with its upstreams and listen address
// replaced, included from a main nginx.conf that keeps every file in a
// temporary directory. Only tests import it.
package testnginx

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

var (
	firstUpstreamRE = regexp.MustCompile(`(?m)^\s*server modellab-1:8080[^\n]*\n`)
	listenV6RE      = regexp.MustCompile(`(?m)^\s*listen \[::\]:80;\n`)
)

// Conf writes dir/modellab.conf (the shipped file with upstream servers
// modellab-N:8080 replaced by upstreams, more lines like the first added
// when there are more upstreams than it lists, and, when listen is set,
// its listen lines by that address) and dir/nginx.conf including it, and
// returns the path of nginx.conf. Nothing else of the shipped file changes.
func Conf(t testing.TB, dir string, upstreams []string, listen string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "deploy", "nginx", "modellab.conf"))
	if err != nil {
		t.Fatal(err)
	}
	site := string(b)
	line := firstUpstreamRE.FindString(site)
	if line == "" {
		t.Fatal("modellab.conf has no upstream modellab-1:8080")
	}
	for i := 2; i < len(upstreams); i++ {
		name := fmt.Sprintf("modellab-%d:8080", i+1)
		if !strings.Contains(site, name) {
			site = strings.Replace(site, line, line+strings.Replace(line, "modellab-1:8080", name, 1), 1)
		}
	}
	for i, u := range upstreams {
		name := fmt.Sprintf("modellab-%d:8080", i+1)
		if !strings.Contains(site, name) {
			t.Fatalf("modellab.conf has no upstream %s", name)
		}
		site = strings.ReplaceAll(site, name, u)
	}
	if listen != "" {
		site = listenV6RE.ReplaceAllString(site, "")
		site = strings.Replace(site, "listen 80;", "listen "+listen+";", 1)
	}
	write(t, filepath.Join(dir, "modellab.conf"), site)
	path := filepath.Join(dir, "nginx.conf")
	write(t, path, fmt.Sprintf(mainConf, dir))
	return path
}

// mainConf runs nginx in the foreground as one process, with its pid,
// logs and temporary files under the test's directory (%[1]s).
const mainConf = `daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/modellab.conf;
}
`

func write(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
