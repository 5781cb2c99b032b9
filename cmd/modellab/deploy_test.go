package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"
)

// The deployment files live at the repository root and under deploy/; these
// tests hold them to the code: probe paths, ports, grace periods against the
// defaults of envVars, variable names against envVars.

func repoPath(parts ...string) string {
	return filepath.Join(append([]string{"..", ".."}, parts...)...)
}

// envDefaultMS is the default of a millisecond variable, 0 when the
// configuration has no such variable.
func envDefaultMS(t *testing.T, name string) int {
	t.Helper()
	for _, v := range envVars {
		if v.name == name {
			n, err := strconv.Atoi(v.def)
			if err != nil {
				t.Fatalf("%s default %q: %v", name, v.def, err)
			}
			return n
		}
	}
	return 0
}

// shutdownBudget is how long SIGTERM may take with the defaults: the
// readiness delay (when the configuration has one) plus the drain.
func shutdownBudget(t *testing.T) time.Duration {
	return time.Duration(envDefaultMS(t, "SHUTDOWN_DELAY_MS")+envDefaultMS(t, "SHUTDOWN_TIMEOUT_MS")) * time.Millisecond
}

func isEnvVar(name string) bool {
	return slices.ContainsFunc(envVars, func(v envVar) bool { return v.name == name })
}

type composeFile struct {
	Services map[string]struct {
		Image       string
		Build       any
		Command     []string
		Environment map[string]string
		Ports       []string
		Volumes     []string
		DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
		Healthcheck *struct{ Test []string }
		StopGrace   string `yaml:"stop_grace_period"`
	}
	Volumes map[string]any
}

func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile(repoPath("compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for _, name := range []string{"postgres", "redis", "modellab-1", "modellab-2", "nginx"} {
		s, ok := c.Services[name]
		if !ok {
			t.Fatalf("compose.yaml has no service %s", name)
		}
		if s.Healthcheck == nil || len(s.Healthcheck.Test) < 2 {
			t.Errorf("%s: no healthcheck", name)
		}
	}
	for _, name := range []string{"modellab-1", "modellab-2"} {
		s := c.Services[name]
		if s.Build == nil || !slices.Equal(s.Healthcheck.Test, []string{"CMD", "/modellab", "probe"}) {
			t.Errorf("%s: build %v, healthcheck %v; want the Dockerfile and the probe", name, s.Build, s.Healthcheck.Test)
		}
		for k := range s.Environment {
			if !isEnvVar(k) {
				t.Errorf("%s: environment sets %s, which modellab does not read", name, k)
			}
		}
		if !strings.HasPrefix(s.Environment["DATABASE_URL"], "postgres://") || !strings.HasPrefix(s.Environment["REDIS_URL"], "redis://") {
			t.Errorf("%s: the instances must share PostgreSQL and Redis: %v", name, s.Environment)
		}
		for _, dep := range []string{"postgres", "redis"} {
			if s.DependsOn[dep].Condition != "service_healthy" {
				t.Errorf("%s: depends_on %s %+v, want condition service_healthy", name, dep, s.DependsOn[dep])
			}
		}
		grace, err := time.ParseDuration(s.StopGrace)
		if err != nil || grace <= shutdownBudget(t) {
			t.Errorf("%s: stop_grace_period %q, want more than the shutdown budget %v", name, s.StopGrace, shutdownBudget(t))
		}
	}
	if !slices.Contains(c.Services["modellab-1"].Command, "--demo") || slices.Contains(c.Services["modellab-2"].Command, "--demo") {
		t.Errorf("exactly modellab-1 seeds the demo data: %v / %v", c.Services["modellab-1"].Command, c.Services["modellab-2"].Command)
	}
	if c.Services["modellab-2"].DependsOn["modellab-1"].Condition != "service_healthy" {
		t.Errorf("modellab-2 must wait for modellab-1 (seeding, migrations)")
	}
	ngx := c.Services["nginx"]
	for _, dep := range []string{"modellab-1", "modellab-2"} {
		if ngx.DependsOn[dep].Condition != "service_healthy" {
			t.Errorf("nginx: depends_on %s %+v, want service_healthy", dep, ngx.DependsOn[dep])
		}
	}
	if len(ngx.Volumes) == 0 || !strings.HasPrefix(ngx.Volumes[0], "./deploy/nginx/modellab.conf:") {
		t.Fatalf("nginx volumes %v, want deploy/nginx/modellab.conf mounted", ngx.Volumes)
	}
	conf, err := os.ReadFile(repoPath("deploy", "nginx", "modellab.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"modellab-1", "modellab-2"} {
		if !bytes.Contains(conf, []byte("server "+name+":8080")) {
			t.Errorf("deploy/nginx/modellab.conf has no upstream server %s:8080", name)
		}
	}
}

// TestNginxKeepaliveBelowShutdownDelay: nginx must close its idle
// connections to an instance that got SIGTERM before the instance drains
// (and closes them from its side, racing with a request nginx writes).
func TestNginxKeepaliveBelowShutdownDelay(t *testing.T) {
	m := regexp.MustCompile(`(?m)^\s*keepalive_timeout (\d+)s;`).FindSubmatch([]byte(mustRead(t, repoPath("deploy", "nginx", "modellab.conf"))))
	if m == nil {
		t.Fatal("deploy/nginx/modellab.conf: no keepalive_timeout Ns; in the upstream")
	}
	idle, _ := time.ParseDuration(string(m[1]) + "s")
	if delay := time.Duration(envDefaultMS(t, "SHUTDOWN_DELAY_MS")) * time.Millisecond; idle >= delay {
		t.Errorf("upstream keepalive_timeout %v, want less than SHUTDOWN_DELAY_MS's default %v", idle, delay)
	}
}

// k8sObject is the part of a Kubernetes object these checks read.
type k8sObject struct {
	Kind     string
	Metadata struct{ Name string }
	Data     map[string]string
	String   map[string]string `yaml:"stringData"`
	Spec     struct {
		Replicas int
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		}
		// Service: selector is a plain map; Deployment and PDB use matchLabels.
		MinAvailable int `yaml:"minAvailable"`
		Template     struct {
			Metadata struct{ Labels map[string]string }
			Spec     struct {
				Grace      int `yaml:"terminationGracePeriodSeconds"`
				Containers []struct {
					Ports []struct {
						Name          string
						ContainerPort int `yaml:"containerPort"`
					}
					EnvFrom []struct {
						ConfigMapRef *struct{ Name string } `yaml:"configMapRef"`
						SecretRef    *struct{ Name string } `yaml:"secretRef"`
					} `yaml:"envFrom"`
					Readiness *k8sProbe `yaml:"readinessProbe"`
					Liveness  *k8sProbe `yaml:"livenessProbe"`
					Resources struct {
						Requests map[string]string
						Limits   map[string]string
					}
				}
			}
		}
	}
	Resources []string // Kustomization
}

type k8sProbe struct {
	HTTPGet struct {
		Path string
		Port any
	} `yaml:"httpGet"`
}

func readK8s(t *testing.T) map[string]k8sObject {
	t.Helper()
	files, err := filepath.Glob(repoPath("deploy", "kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	objs := map[string]k8sObject{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(fh)
		for {
			var o k8sObject
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			objs[o.Kind] = o
		}
		fh.Close()
	}
	return objs
}

func TestKubernetesManifests(t *testing.T) {
	objs := readK8s(t)
	for _, kind := range []string{"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget", "Kustomization"} {
		if _, ok := objs[kind]; !ok {
			t.Fatalf("no %s in deploy/kubernetes", kind)
		}
	}
	d := objs["Deployment"]
	ps := d.Spec.Template.Spec
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(ps.Containers))
	}
	c := ps.Containers[0]
	if c.Readiness == nil || c.Readiness.HTTPGet.Path != "/readyz" || c.Liveness == nil || c.Liveness.HTTPGet.Path != "/healthz" {
		t.Errorf("probes: readiness %+v, liveness %+v; want /readyz and /healthz", c.Readiness, c.Liveness)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 8080 || c.Readiness.HTTPGet.Port != c.Ports[0].Name {
		t.Errorf("ports %+v, probe port %v; want 8080 (the default ADDR), probed by name", c.Ports, c.Readiness.HTTPGet.Port)
	}
	cm := objs["ConfigMap"]
	timeout := shutdownBudget(t)
	if v, ok := cm.Data["SHUTDOWN_TIMEOUT_MS"]; ok {
		ms, _ := strconv.Atoi(v)
		timeout += time.Duration(ms-envDefaultMS(t, "SHUTDOWN_TIMEOUT_MS")) * time.Millisecond
	}
	if need := int(math.Ceil(timeout.Seconds())); ps.Grace <= need {
		t.Errorf("terminationGracePeriodSeconds %d, want more than SHUTDOWN_DELAY_MS + SHUTDOWN_TIMEOUT_MS = %ds", ps.Grace, need)
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}
	for _, o := range []k8sObject{cm, objs["Secret"]} {
		for k := range o.Data {
			if !isEnvVar(k) {
				t.Errorf("%s %s sets %s, which modellab does not read", o.Kind, o.Metadata.Name, k)
			}
		}
		for k := range o.String {
			if !isEnvVar(k) {
				t.Errorf("%s %s sets %s, which modellab does not read", o.Kind, o.Metadata.Name, k)
			}
		}
	}
	refs := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			refs["ConfigMap"] = ef.ConfigMapRef.Name
		}
		if ef.SecretRef != nil {
			refs["Secret"] = ef.SecretRef.Name
		}
	}
	for kind, name := range refs {
		if objs[kind].Metadata.Name != name {
			t.Errorf("envFrom names %s %q; the manifest is %q", kind, name, objs[kind].Metadata.Name)
		}
	}
	labels := d.Spec.Template.Metadata.Labels
	for kind, sel := range map[string]map[string]string{"Deployment": d.Spec.Selector.MatchLabels, "PodDisruptionBudget": objs["PodDisruptionBudget"].Spec.Selector.MatchLabels} {
		if len(sel) == 0 {
			t.Errorf("%s has no selector", kind)
		}
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("%s selects %s=%s, the pods are labelled %v", kind, k, v, labels)
			}
		}
	}
	if pdb := objs["PodDisruptionBudget"].Spec.MinAvailable; pdb < 1 || pdb >= d.Spec.Replicas {
		t.Errorf("PDB minAvailable %d with %d replicas: a drain could never proceed or would take all", pdb, d.Spec.Replicas)
	}
	for _, r := range objs["Kustomization"].Resources {
		if _, err := os.Stat(repoPath("deploy", "kubernetes", r)); err != nil {
			t.Errorf("kustomization lists %s: %v", r, err)
		}
	}
}

// The Service's selector is a plain map, which k8sObject cannot share with
// the others' matchLabels: read it on its own.
func TestKubernetesServiceSelector(t *testing.T) {
	b, err := os.ReadFile(repoPath("deploy", "kubernetes", "service.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var svc struct {
		Spec struct {
			Selector map[string]string
			Ports    []struct {
				TargetPort string `yaml:"targetPort"`
			}
		}
	}
	if err := yaml.Unmarshal(b, &svc); err != nil {
		t.Fatal(err)
	}
	labels := readK8s(t)["Deployment"].Spec.Template.Metadata.Labels
	if len(svc.Spec.Selector) == 0 {
		t.Fatal("the Service selects nothing")
	}
	for k, v := range svc.Spec.Selector {
		if labels[k] != v {
			t.Errorf("Service selects %s=%s, pods are labelled %v", k, v, labels)
		}
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort != "http" {
		t.Errorf("Service ports %+v, want the container's named port http", svc.Spec.Ports)
	}
}

// readUnit reads a systemd unit's Key=Value lines (later values win).
func readUnit(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kv := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not Key=Value: %q", path, line)
		}
		kv[k] = append(kv[k], v)
	}
	return kv
}

func TestSystemdUnit(t *testing.T) {
	unit := repoPath("deploy", "systemd", "modellab.service")
	kv := readUnit(t, unit)
	last := func(k string) string {
		if v := kv[k]; len(v) > 0 {
			return v[len(v)-1]
		}
		return ""
	}
	for k, want := range map[string]string{
		"ExecStart": "/usr/local/bin/modellab serve", "DynamicUser": "yes", "ProtectSystem": "strict",
		"NoNewPrivileges": "yes", "ProtectHome": "yes", "PrivateTmp": "yes", "EnvironmentFile": "/etc/modellab/modellab.env",
	} {
		if got := last(k); got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	stop, err := time.ParseDuration(last("TimeoutStopSec"))
	if err != nil || stop <= shutdownBudget(t) {
		t.Errorf("TimeoutStopSec=%q, want more than the shutdown budget %v", last("TimeoutStopSec"), shutdownBudget(t))
	}
	if got := kv["Requires"]; !slices.Contains(got, "modellab.socket") {
		t.Errorf("Requires=%q, want modellab.socket (socket activation)", got)
	}
	sock := readUnit(t, repoPath("deploy", "systemd", "modellab.socket"))
	if got := sock["ListenStream"]; len(got) != 1 {
		t.Errorf("modellab.socket: ListenStream=%q, want one socket (modellab serves exactly one)", got)
	}
	for _, line := range strings.Split(mustRead(t, repoPath("deploy", "systemd", "modellab.env")), "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") && !isEnvVar(k) {
			t.Errorf("modellab.env sets %s, which modellab does not read", k)
		}
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// systemd-analyze verify finds nothing to say about the unit (unknown keys
// and bad values are only warnings, so any output fails the test).
func TestSystemdVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	unit := mustRead(t, repoPath("deploy", "systemd", "modellab.service"))
	// verify checks that ExecStart exists: point it at a real binary.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "modellab.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/modellab", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "modellab.socket")
	if err := os.WriteFile(sock, []byte(mustRead(t, repoPath("deploy", "systemd", "modellab.socket"))), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", "--man=no", sock, path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// Both Dockerfiles build the same kind of image: a static binary, a
// non-root user, port 8080, the probe as the health check (no shell).
func TestDockerfiles(t *testing.T) {
	for _, f := range []string{"Dockerfile", filepath.Join("deploy", "container", "Dockerfile.prebuilt")} {
		s := mustRead(t, repoPath(f))
		final := s[strings.LastIndex(s, "\nFROM "):]
		for _, want := range []string{
			"\nUSER 65532:65532\n", "\nEXPOSE 8080\n", `CMD ["/modellab", "probe"]`, `ENTRYPOINT ["/modellab"]`,
			"ENV DATABASE_URL=sqlite:///data/modellab.db", "/data",
		} {
			if !strings.Contains(final, want) {
				t.Errorf("%s: the final stage lacks %q", f, want)
			}
		}
		if !strings.Contains(final, "HEALTHCHECK") {
			t.Errorf("%s: no HEALTHCHECK", f)
		}
	}
	df := mustRead(t, repoPath("Dockerfile"))
	for _, want := range []string{"CGO_ENABLED=0", "FROM gcr.io/distroless/static", "-X main.version=", "-X main.commit="} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	mk := mustRead(t, repoPath("Makefile"))
	if !strings.Contains(mk, "CGO_ENABLED=0") || !strings.Contains(mk, "deploy/container/Dockerfile.prebuilt") {
		t.Errorf("make build/image: want a static build and the prebuilt Dockerfile")
	}
}
