package main

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cacheproxy/cacheproxy/internal/await"
	"github.com/cacheproxy/cacheproxy/internal/redistest"
)

// The parts of the Kubernetes objects in configs/deploy/kubernetes that
// the test reads.
type (
	k8sObject struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name   string            `yaml:"name"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Data      map[string]string `yaml:"data"`      // ConfigMap
		Resources []string          `yaml:"resources"` // Kustomization
		Spec      yaml.Node         `yaml:"spec"`
	}
	k8sDeployment struct {
		Replicas int         `yaml:"replicas"`
		Selector k8sSelector `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds int            `yaml:"terminationGracePeriodSeconds"`
				Containers                    []k8sContainer `yaml:"containers"`
				Volumes                       []struct {
					Name      string `yaml:"name"`
					ConfigMap struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	}
	k8sSelector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	}
	k8sContainer struct {
		Name  string   `yaml:"name"`
		Args  []string `yaml:"args"`
		Env   []k8sEnv `yaml:"env"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
		LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
		Resources      struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			SubPath   string `yaml:"subPath"`
		} `yaml:"volumeMounts"`
	}
	k8sEnv struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	k8sProbe struct {
		Exec *struct {
			Command []string `yaml:"command"`
		} `yaml:"exec"`
		HTTPGet *struct {
			Path string    `yaml:"path"`
			Port yaml.Node `yaml:"port"` // a number or a port's name
		} `yaml:"httpGet"`
	}
	k8sService struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Port       int       `yaml:"port"`
			TargetPort yaml.Node `yaml:"targetPort"`
		} `yaml:"ports"`
	}
	k8sPDB struct {
		Selector k8sSelector `yaml:"selector"`
	}
)

// port resolves a port given by number or by the name of one of c's ports.
func (c k8sContainer) port(t *testing.T, n yaml.Node) int {
	t.Helper()
	if p, err := strconv.Atoi(n.Value); err == nil {
		return p
	}
	for _, p := range c.Ports {
		if p.Name == n.Value {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %q", c.Name, n.Value)
	return 0
}

// subset reports whether every label of sel is in labels.
func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

// mebibytes parses a Kubernetes memory quantity in Mi or Gi.
func mebibytes(t *testing.T, q string) int64 {
	t.Helper()
	for suffix, mul := range map[string]int64{"Mi": 1, "Gi": 1024} {
		if v, ok := strings.CutSuffix(q, suffix); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				return n * mul
			}
		}
	}
	t.Fatalf("memory quantity %q: want a number of Mi or Gi", q)
	return 0
}

// TestKubernetesManifests reads every object of configs/deploy/kubernetes
// and checks that they fit together and fit the program: the ConfigMap
// loads with the real config loader under the Deployment's args and env,
// the Service and the probes point at the ports that configuration
// listens on, the grace period exceeds -drain + -shutdown-timeout, and, on
// a running instance, the liveness probe is answered and the readiness
// probe succeeds once ready and fails while draining.
func TestKubernetesManifests(t *testing.T) {
	dir := deployFile("kubernetes")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", dir, err)
	}
	objects := map[string]k8sObject{} // by kind
	var resources []string
	for _, f := range files {
		dec := yaml.NewDecoder(strings.NewReader(readFile(t, f)))
		for {
			var o k8sObject
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if _, dup := objects[o.Kind]; dup {
				t.Errorf("%s: a second %s", f, o.Kind)
			}
			objects[o.Kind] = o
			if o.Kind != "Kustomization" {
				resources = append(resources, filepath.Base(f))
			}
		}
	}
	for _, kind := range []string{"Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "Kustomization"} {
		if _, ok := objects[kind]; !ok {
			t.Fatalf("no %s in %s", kind, dir)
		}
	}
	slices.Sort(resources)
	kustomized := slices.Sorted(slices.Values(objects["Kustomization"].Resources))
	if !slices.Equal(resources, kustomized) {
		t.Errorf("kustomization.yaml lists %q, the directory holds %q", kustomized, resources)
	}
	decode := func(kind string, v any) {
		t.Helper()
		spec := objects[kind].Spec
		if err := spec.Decode(v); err != nil {
			t.Fatalf("%s spec: %v", kind, strings.ReplaceAll(err.Error(), "\n", " "))
		}
	}
	var dep k8sDeployment
	var svc k8sService
	var pdb k8sPDB
	decode("Deployment", &dep)
	decode("Service", &svc)
	decode("PodDisruptionBudget", &pdb)
	podLabels := dep.Template.Metadata.Labels
	if dep.Replicas != 3 {
		t.Errorf("Deployment replicas %d, want 3", dep.Replicas)
	}
	if !subset(dep.Selector.MatchLabels, podLabels) || !subset(svc.Selector, podLabels) || !subset(pdb.Selector.MatchLabels, podLabels) {
		t.Errorf("selectors %v (Deployment), %v (Service), %v (PDB) do not all select the pods' labels %v",
			dep.Selector.MatchLabels, svc.Selector, pdb.Selector.MatchLabels, podLabels)
	}
	if len(dep.Template.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(dep.Template.Spec.Containers))
	}
	c := dep.Template.Spec.Containers[0]
	checkFlags(t, "Deployment args", c.Args)

	// The ConfigMap is mounted at the -config path.
	cm := objects["ConfigMap"]
	args, configPath := replaceArg(t, c.Args, "-config", "")
	var mounted string
	for _, v := range dep.Template.Spec.Volumes {
		if v.ConfigMap.Name != cm.Metadata.Name {
			continue
		}
		for _, m := range c.VolumeMounts {
			if m.Name == v.Name {
				mounted = strings.TrimPrefix(configPath, m.MountPath+"/")
				if m.SubPath != "" {
					// The kubelet never updates a subPath mount: a
					// ConfigMap change could not be reloaded (deployment.yaml).
					t.Errorf("the ConfigMap is mounted with subPath %q: its changes would never reach the pod", m.SubPath)
				}
			}
		}
	}
	content, ok := cm.Data[mounted]
	if !ok {
		t.Fatalf("-config %s is not a key of ConfigMap %s mounted in the container", configPath, cm.Metadata.Name)
	}
	configFile := filepath.Join(t.TempDir(), "cacheproxy.yaml")
	if err := os.WriteFile(configFile, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	args, _ = replaceArg(t, args, "-config", configFile)

	// The environment, with test values for the Secret's keys.
	redis := redistest.Start(t)
	const token = "k8s-test-admin-token-0123456789"
	secretValues := map[string]string{"admin-token": token, "redis-url": redis.URL()}
	env := map[string]string{}
	readme := readFile(t, deployFile("README.md"))
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			v, ok := secretValues[ref.Key]
			if !ok {
				t.Fatalf("env %s comes from unknown Secret key %q", e.Name, ref.Key)
			}
			if !strings.Contains(readme, "kubectl create secret generic "+ref.Name) || !strings.Contains(readme, "--from-literal="+ref.Key+"=") {
				t.Errorf("configs/deploy/README.md does not show how to create Secret %s with key %s", ref.Name, ref.Key)
			}
			env[e.Name] = v
		default:
			env[e.Name] = e.Value
		}
	}
	if env["CACHEPROXY_ADMIN_TOKEN"] != token || env["CACHEPROXY_REDIS"] == "" {
		t.Errorf("the admin token and the Redis URL do not come from the Secret: env %v", env)
	}
	cfg, err := loadConfig(args, getenvFrom(env))
	if err != nil {
		t.Fatalf("the Deployment's args and env with the ConfigMap: %v", err)
	}

	// Ports: the Service targets the proxy listener; the probes, the admin one.
	var proxyPort, adminPort int
	for _, p := range c.Ports {
		switch p.ContainerPort {
		case portOf(t, cfg.Listen):
			proxyPort = p.ContainerPort
		case portOf(t, cfg.AdminListen):
			adminPort = p.ContainerPort
		}
	}
	if proxyPort == 0 || adminPort == 0 {
		t.Fatalf("container ports %+v do not include -listen %s and -admin-listen %s", c.Ports, cfg.Listen, cfg.AdminListen)
	}
	if len(svc.Ports) != 1 || svc.Ports[0].Port != 80 || c.port(t, svc.Ports[0].TargetPort) != proxyPort {
		t.Errorf("Service ports %+v, want 80 to the proxy listener's %d", svc.Ports, proxyPort)
	}
	live := c.LivenessProbe
	if live == nil || live.HTTPGet == nil || live.HTTPGet.Path != "/healthz" || c.port(t, live.HTTPGet.Port) != adminPort {
		t.Fatalf("livenessProbe %+v, want GET /healthz on the admin port %d", live, adminPort)
	}
	ready := c.ReadinessProbe
	if ready == nil || ready.Exec == nil {
		t.Fatalf("readinessProbe %+v, want an exec probe (/readyz needs the token)", ready)
	}
	readyURL := regexp.MustCompile(`http://127\.0\.0\.1:(\d+)(/\S*)`)
	m := readyURL.FindStringSubmatch(strings.Join(ready.Exec.Command, " "))
	if m == nil || m[1] != strconv.Itoa(adminPort) || m[2] != "/readyz" {
		t.Fatalf("readinessProbe %q, want a request for http://127.0.0.1:%d/readyz", ready.Exec.Command, adminPort)
	}

	grace := time.Duration(dep.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	if grace <= cfg.Drain+cfg.ShutdownTimeout {
		t.Errorf("terminationGracePeriodSeconds %v does not exceed -drain %v + -shutdown-timeout %v", grace, cfg.Drain, cfg.ShutdownTimeout)
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" {
		t.Errorf("resources.requests %v: want cpu and memory", c.Resources.Requests)
	}
	if limit, goLimit := mebibytes(t, c.Resources.Limits["memory"]), memoryLimit(cfg.L1MaxBytes); limit<<20 < goLimit+16<<20 {
		t.Errorf("memory limit %dMi is less than the Go memory limit for -l1-max-bytes %dMi (%dMi) + 16Mi",
			limit, cfg.L1MaxBytes>>20, goLimit>>20)
	}

	// The probes against a running instance configured the same way (but
	// on free ports, in front of a test origin).
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer origin.Close()
	var envList []string
	for k, v := range env {
		if k != "CACHEPROXY_DRAIN" {
			envList = append(envList, k+"="+v)
		}
	}
	s := startServer(t, envList, "-config", configFile, "-origin", origin.URL, "-drain", "3s")
	probe := func(token string) error {
		cmd := exec.Command(ready.Exec.Command[0], ready.Exec.Command[1:]...)
		cmd.Args[len(cmd.Args)-1] = readyURL.ReplaceAllString(cmd.Args[len(cmd.Args)-1], s.adminURL+"$2")
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "CACHEPROXY_ADMIN_TOKEN=" + token}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return errors.New(err.Error() + ": " + out.String())
		}
		return nil
	}
	if needProgram(t, "curl", "curl"); !strings.HasPrefix(ready.Exec.Command[0], "/bin/sh") {
		t.Fatalf("readinessProbe runs %s, want /bin/sh", ready.Exec.Command[0])
	}
	code, _, _ := fetch(t, "GET", s.adminURL+live.HTTPGet.Path, "")
	if code < 200 || code >= 400 {
		t.Errorf("livenessProbe GET %s (no token, as the kubelet sends it) = %d", live.HTTPGet.Path, code)
	}
	await.Until(t, 15*time.Second, "readiness probe to succeed", func() bool { return probe(token) == nil })
	if err := probe("wrong-token-0123456789"); err == nil {
		t.Error("readiness probe succeeds with a wrong token: it does not send the token to /readyz")
	}

	// Draining: the probe fails while the proxy still serves.
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	await.Until(t, 15*time.Second, "readiness probe to fail while draining", func() bool { return probe(token) != nil })
	if code, _, body := fetch(t, "GET", s.proxyURL+"/x", ""); code != 200 || body != "ok" {
		t.Errorf("GET while draining = %d %q, want the origin's answer", code, body)
	}
	if code := s.wait(t); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
}
