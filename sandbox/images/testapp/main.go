// Command testapp is the application the real node's scenarios deploy. It serves HTTP on $PORT (default
// 8080): /healthz answers 200 when ready and 503 before, and / answers with the version and config.
// Its behaviour is set by environment variables, one per failure a release can have:
//
//	VERSION=1.2.3           printed at start and served on /
//	CRASH_AT_START=msg      print msg to stderr and exit 1 at once
//	NEVER_READY=1           run, but /healthz answers 503 forever
//	READY_AFTER=10s         /healthz answers 503 until this long after start
//	CRASH_AFTER=10s         print "crashing after 10s" to stderr and exit 1 that long after start
//	CRASH_ONCE=/state/m     the first run (no file m yet) creates m and exits 1 a second after start;
//	                        restarts (m is on an emptyDir, which survives them) run normally
//	ALLOCATE_MB_PER_S=50    allocate and touch this much memory every second until killed (OOMKilled)
//	CONFIG_FILE=/etc/app/c  read this file at start (exit 1 naming it when it cannot) and serve it on /
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	log.SetFlags(0)
	log.SetOutput(os.Stderr)
	start := time.Now()
	version := os.Getenv("VERSION")
	if msg := os.Getenv("CRASH_AT_START"); msg != "" {
		log.Print(msg)
		os.Exit(1)
	}
	var config []byte
	if p := os.Getenv("CONFIG_FILE"); p != "" {
		var err error
		if config, err = os.ReadFile(p); err != nil {
			log.Printf("testapp: cannot read config file: %v", err)
			os.Exit(1)
		}
	}
	readyAfter := duration("READY_AFTER")
	neverReady := os.Getenv("NEVER_READY") != ""
	var ready atomic.Bool
	ready.Store(!neverReady && readyAfter == 0)
	if !neverReady && readyAfter > 0 {
		time.AfterFunc(readyAfter, func() { ready.Store(true); log.Printf("testapp: ready after %s", readyAfter) })
	}
	if d := duration("CRASH_AFTER"); d > 0 {
		time.AfterFunc(d, func() { log.Printf("testapp: crashing after %s", d); os.Exit(1) })
	}
	if marker := os.Getenv("CRASH_ONCE"); marker != "" {
		crashOnce(marker)
	}
	if mb := os.Getenv("ALLOCATE_MB_PER_S"); mb != "" {
		go allocate(mb)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "testapp %s up %s\n%s", version, time.Since(start).Round(time.Second), config)
	})
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		_ = srv.Close()
	}()
	log.Printf("testapp %s listening on :%s", version, port)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Printf("testapp: %v", err)
		os.Exit(1)
	}
}

func duration(env string) time.Duration {
	v := os.Getenv(env)
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		log.Printf("testapp: %s=%q: %v", env, v, err)
		os.Exit(2)
	}
	return d
}

// crashOnce makes the first run of a container exit a second after it starts: an app that fails once (a
// dependency not up yet) and then runs fine after the kubelet's restart.
func crashOnce(marker string) {
	if _, err := os.Stat(marker); err == nil {
		log.Printf("testapp: restarted (%s exists), running", marker)
		return
	}
	if err := os.WriteFile(marker, []byte("crashed once\n"), 0o644); err != nil {
		log.Printf("testapp: CRASH_ONCE: %v", err)
		os.Exit(2)
	}
	time.AfterFunc(time.Second, func() { log.Print("testapp: crashing once"); os.Exit(1) })
}

// allocate grows the heap by mb megabytes a second, touching every page so it counts against the
// container's memory limit, until the kernel's OOM killer ends the process.
func allocate(mb string) {
	var n int
	if _, err := fmt.Sscan(mb, &n); err != nil || n <= 0 {
		log.Printf("testapp: ALLOCATE_MB_PER_S=%q is not a positive number", mb)
		os.Exit(2)
	}
	var hold [][]byte
	for t := time.NewTicker(time.Second / 10); ; <-t.C {
		b := make([]byte, n<<20/10)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		hold = append(hold, b)
		if len(hold)%10 == 0 {
			log.Printf("testapp: holding %d MB", len(hold)*n/10)
		}
	}
}
