package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// engine runs a container tool: podman, or docker with a daemon.
type engine struct {
	t     *testing.T
	name  string
	flags []string // global flags, e.g. --runtime runc
}

func (e *engine) run(args ...string) (string, error) {
	out, err := exec.Command(e.name, append(append([]string{}, e.flags...), args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// containerEngine finds an engine that can build and run images, or skips.
func containerEngine(t *testing.T) *engine {
	t.Helper()
	if os.Getenv("MODELLAB_CONTAINER_TESTS") == "off" {
		t.Skip("MODELLAB_CONTAINER_TESTS=off")
	}
	if testing.Short() {
		t.Skip("builds and runs a container image")
	}
	if _, err := exec.LookPath("podman"); err == nil {
		return &engine{t: t, name: "podman"}
	}
	if _, err := exec.LookPath("docker"); err == nil {
		if err := exec.Command("docker", "info").Run(); err == nil {
			return &engine{t: t, name: "docker"}
		}
	}
	t.Skip("no container engine here: neither podman nor a docker daemon")
	return nil
}

// startContainer runs image detached with its port 8080 on a free
// loopback port. The limits and, for podman, the runc fallback are for
// sandboxes that refuse raising rlimits or run cgroups in hybrid mode
// (crun refuses those); they change nothing the image does.
func (e *engine) startContainer(image string) (id string) {
	t := e.t
	name := "modellab-test-" + randomHex(4)
	// A failed start leaves a created container behind: remove it by name.
	t.Cleanup(func() { _, _ = e.run("rm", "-f", name) })
	args := []string{"run", "-d", "--name", name, "-p", "127.0.0.1::8080", "-e", "DISABLE_REDIS_CACHE=true",
		"--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096", image}
	out, err := e.run(args...)
	if err != nil && e.name == "podman" {
		if _, lerr := exec.LookPath("runc"); lerr == nil {
			t.Logf("podman run with the default runtime failed (%v: %s); retrying with runc", err, out)
			_, _ = e.run("rm", "-f", name)
			e.flags = []string{"--runtime", "runc"}
			out, err = e.run(args...)
		}
	}
	if err != nil {
		t.Fatalf("%s run: %v: %s", e.name, err, out)
	}
	return name
}

// `make image` builds an image from the host-built binary that starts,
// seeds its demo data into /data as a non-root user, answers through the
// published port, passes its own health check (the probe, no shell), and
// exits 0 on SIGTERM.
func TestContainerImage(t *testing.T) {
	e := containerEngine(t)
	image := "localhost/modellab-test:" + randomHex(4)
	out, err := exec.Command("make", "-C", repoPath(), "image", "IMAGE="+image, "CONTAINER="+e.name).CombinedOutput()
	if err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = e.run("rmi", "-f", image) })
	if user, err := e.run("image", "inspect", "--format", "{{.Config.User}}", image); err != nil || user != "65532:65532" {
		t.Errorf("image user %q (%v), want 65532:65532", user, err)
	}
	id := e.startContainer(image)
	port, err := e.run("port", id, "8080/tcp")
	if err != nil {
		t.Fatalf("%s port: %v: %s", e.name, err, port)
	}
	base := "http://" + strings.Split(port, "\n")[0]
	deadline := time.Now().Add(60 * time.Second)
	for {
		if out, err := e.run("exec", id, "/modellab", "probe"); err == nil {
			break
		} else if time.Now().After(deadline) {
			logs, _ := e.run("logs", id)
			t.Fatalf("the probe inside the container never passed: %v %s\nlogs:\n%s", err, out, logs)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if n := modelCount(t, base); n == 0 {
		t.Errorf("no demo models through %s", base)
	}
	if logs, _ := e.run("logs", id); !strings.Contains(logs, `demo user "demo" token: mlk_`) {
		t.Errorf("no demo token in the logs:\n%s", logs)
	}
	e.checkHealth(id)
	if out, err := e.run("stop", "-t", "30", id); err != nil {
		t.Fatalf("%s stop: %v: %s", e.name, err, out)
	}
	if code, err := e.run("inspect", "--format", "{{.State.ExitCode}}", id); err != nil || code != "0" {
		logs, _ := e.run("logs", id)
		t.Errorf("exit code after SIGTERM %q (%v), want 0\n%s", code, err, logs)
	}
}

// checkHealth runs the image's HEALTHCHECK.
func (e *engine) checkHealth(id string) {
	t := e.t
	if e.name == "podman" {
		if out, err := e.run("healthcheck", "run", id); err != nil {
			t.Errorf("podman healthcheck run: %v: %s", err, out)
		}
		return
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		status, _ := e.run("inspect", "--format", "{{.State.Health.Status}}", id)
		if status == "healthy" {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("docker health status %q after 60 s, want healthy", status)
			return
		}
		time.Sleep(time.Second)
	}
}
