package main

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// generate is the load generator used when wrk is missing: conns
// connections sending GET target with cookie until dur has passed; it
// prints one RESULT line for the parent.
func generate(target, cookie string, conns int, dur time.Duration) error {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	client := &http.Client{Transport: tr}
	var ok, bad, errs atomic.Int64
	deadline := time.Now().Add(dur)
	start := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", target, nil)
			if cookie != "" {
				req.Header.Set("Cookie", cookie)
			}
			for time.Now().Before(deadline) {
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok.Add(1)
				} else {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	fmt.Printf("RESULT requests=%d non2xx=%d errors=%d seconds=%.3f\n", ok.Load()+bad.Load(), bad.Load(), errs.Load(), secs)
	return nil
}
