// Command kube-create-clientgo is the client-go side of bench/kube_create:
// the way KEDA and Argo Events talk to the API server, with client-side rate
// limiting switched off so that only the client library and the server are
// measured. It follows the contract in ../README.md:
//
//	kube-create-clientgo create --kubeconfig K --namespace NS --count N --concurrency C --prefix P
//	kube-create-clientgo cache  --kubeconfig K --namespace NS --expect N
//
// Each prints one JSON line on stdout; any error exits 1 with a message.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	selector = "app.kubernetes.io/managed-by=cruncher"
	pageSize = 500
)

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kube-create-clientgo: "+format+"\n", args...)
	os.Exit(1)
}

// restConfig loads the kubeconfig with client-side throttling off: a
// negative QPS makes client-go build no token-bucket limiter at all
// (rest.Config: "If it's negative, then no rate limiting").
func restConfig(path string) *rest.Config {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		die("loading kubeconfig %s: %v", path, err)
	}
	cfg.QPS = -1
	cfg.Burst = 1 << 20
	cfg.UserAgent = "cruncher-bench-clientgo"
	return cfg
}

// job is the benchmark's seed-like Job (the same object as the manifest in
// ../README.md and run.py's kubectl input). Suspended: the Job controller
// creates no pods for it.
func job(name string, i int) *batchv1.Job {
	task, _ := json.Marshal(map[string]string{"target": fmt.Sprintf("host-%d", i), "duration": "10"})
	suspend := true
	backoff := int32(2)
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				"app.kubernetes.io/managed-by": "cruncher",
				"cruncher.dev/queue":           "bench",
			},
			Annotations: map[string]string{"task": string(task)},
		},
		Spec: batchv1.JobSpec{
			Suspend:      &suspend,
			BackoffLimit: &backoff,
			Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{
						Name:    "task",
						Image:   "busybox",
						Command: []string{"sh", "-c", "echo hi"},
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU:    resource.MustParse("100m"),
							corev1.ResourceMemory: resource.MustParse("100M"),
						}},
					}},
				},
			},
		},
	}
}

func create(args []string) {
	fs := flag.NewFlagSet("create", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "admin kubeconfig")
	ns := fs.String("namespace", "", "namespace (must exist)")
	count := fs.Int("count", 0, "number of Jobs")
	conc := fs.Int("concurrency", 1, "parallel workers")
	prefix := fs.String("prefix", "job", "Job name prefix")
	fs.Parse(args)
	if *kubeconfig == "" || *ns == "" || *count <= 0 || *conc <= 0 {
		die("create needs --kubeconfig, --namespace, --count > 0, --concurrency > 0")
	}
	client, err := kubernetes.NewForConfig(restConfig(*kubeconfig))
	if err != nil {
		die("client: %v", err)
	}
	jobs := client.BatchV1().Jobs(*ns)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= *count || ctx.Err() != nil {
					return
				}
				name := *prefix + "-" + strconv.Itoa(i)
				if _, err := jobs.Create(ctx, job(name, i), metav1.CreateOptions{}); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("create %s/%s: %w", *ns, name, err); cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if firstErr != nil {
		die("%v", firstErr)
	}
	fmt.Printf("{\"created\": %d, \"seconds\": %.6f}\n", *count, secs)
}

// vmHWM reads this process's peak resident set size (kB) from /proc.
func vmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		die("reading /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				die("parsing VmHWM %q: %v", rest, err)
			}
			return kb
		}
	}
	die("no VmHWM in /proc/self/status")
	return 0
}

// pagedListWatch is the informer's ListerWatcher. Two changes from
// cache.NewFilteredListWatchFromClient, both so that client-go makes the
// same requests as every other client of the contract (a paged LIST with
// limit=500, then a WATCH):
//   - the reflector's first LIST asks for resourceVersion "0", which the API
//     server answers from its watch cache in one piece, ignoring limit; we
//     ask for "" (a consistent read, also served from the cache, which pages);
//   - client-go 1.35 would stream the initial state as a watch (WatchListClient,
//     on by default); IsWatchListSemanticsUnSupported turns that off.
type pagedListWatch struct{ cache.ListWatch }

func (pagedListWatch) IsWatchListSemanticsUnSupported() bool { return true }

func cacheJobs(args []string) {
	fs := flag.NewFlagSet("cache", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "admin kubeconfig")
	ns := fs.String("namespace", "", "namespace")
	expect := fs.Int("expect", 0, "number of Jobs to wait for")
	fs.Parse(args)
	if *kubeconfig == "" || *ns == "" || *expect <= 0 {
		die("cache needs --kubeconfig, --namespace, --expect > 0")
	}
	client, err := kubernetes.NewForConfig(restConfig(*kubeconfig))
	if err != nil {
		die("client: %v", err)
	}
	jobs := client.BatchV1().Jobs(*ns)
	var lists, pages atomic.Int64
	lw := &pagedListWatch{cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = selector
			if o.ResourceVersion == "0" {
				o.ResourceVersion = ""
			}
			o.Limit = pageSize
			if o.Continue == "" {
				lists.Add(1)
			}
			pages.Add(1)
			return jobs.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = selector
			return jobs.Watch(ctx, o)
		},
	}}
	informer := cache.NewSharedIndexInformer(lw, &batchv1.Job{}, 0, cache.Indexers{})
	var held atomic.Int64
	reached := make(chan struct{})
	var once sync.Once
	check := func() {
		if held.Load() >= int64(*expect) {
			once.Do(func() { close(reached) })
		}
	}
	informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { held.Add(1); check() },
		DeleteFunc: func(any) { held.Add(-1) },
	})
	stop := make(chan struct{})
	start := time.Now()
	go informer.Run(stop)
	select {
	case <-reached:
	case <-time.After(10 * time.Minute):
		die("timed out after 10 min holding %d of %d Jobs", held.Load(), *expect)
	}
	secs := time.Since(start).Seconds()
	n := len(informer.GetStore().ListKeys())
	hwm := vmHWM()
	close(stop)
	fmt.Printf("{\"cached\": %d, \"seconds\": %.6f, \"vmhwm_kb\": %d, \"lists\": %d, \"pages\": %d}\n",
		n, secs, hwm, lists.Load(), pages.Load())
}

func main() {
	if len(os.Args) < 2 {
		die("usage: %s create|cache [flags]", os.Args[0])
	}
	switch os.Args[1] {
	case "create":
		create(os.Args[2:])
	case "cache":
		cacheJobs(os.Args[2:])
	default:
		die("unknown command %q (want create or cache)", os.Args[1])
	}
}
