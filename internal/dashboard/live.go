package dashboard

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// live streams a page's live part as server-sent events: the part is re-read every Refresh and sent
// when it changed, so a rollout in progress (a deploy, a rollback, the guard's) updates without a
// reload. The browser's EventSource reconnects by itself.
func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	q := r.URL.Query()
	page, block := "overview", "overview-live"
	if q.Get("view") == "app" {
		page, block = "app", "app-live"
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	var last []byte
	tick := time.NewTicker(s.Refresh)
	defer tick.Stop()
	for {
		v := view{s: s}
		if page == "app" {
			s.fillApp(r.Context(), &v, q.Get("ns"), q.Get("app"))
		} else {
			s.fillOverview(r.Context(), &v)
		}
		if r.Context().Err() != nil {
			return
		}
		var b bytes.Buffer
		if err := s.pages[page].ExecuteTemplate(&b, block, v); err != nil {
			s.Log.Error("rendering a live update", "page", page, "error", err)
			return
		}
		if !bytes.Equal(b.Bytes(), last) {
			last = b.Bytes()
			// One "data:" line per line of HTML: the SSE framing.
			var msg strings.Builder
			msg.WriteString("event: update\n")
			for _, line := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
				fmt.Fprintf(&msg, "data: %s\n", line)
			}
			msg.WriteString("\n")
			if _, err := w.Write([]byte(msg.String())); err != nil {
				return
			}
			fl.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}
