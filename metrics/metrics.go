// Package metrics holds a server's Prometheus metrics: one registry per
// server (no global state), the Go runtime and process collectors, and
// constructors that any package uses to add its own metric in one line:
//
//	sends := deps.Metrics.Counter("push_sends_total", "Web Push sends by result.", "result")
//	sends.WithLabelValues("delivered").Inc()
//
// Every name gets the "sovereign_" prefix. A nil *Registry (the OpenAPI
// build, tests without a server) hands out working collectors that are
// registered nowhere, so callers never check for nil. The registry is
// served as Prometheus text by Handler, on the admin or debug listener
// only, never on the public one.
package metrics

import (
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric name.
const Namespace = "sovereign"

// Registry is a server's metrics registry.
type Registry struct {
	reg *prometheus.Registry
}

// New returns a registry holding the Go runtime and process collectors.
func New() *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Registry{reg: reg}
}

// Handler serves the registry in the Prometheus text format.
func (r *Registry) Handler() http.Handler {
	if r == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Gatherer exposes the registry to tests.
func (r *Registry) Gatherer() prometheus.Gatherer {
	if r == nil {
		return prometheus.NewRegistry()
	}
	return r.reg
}

// register adds c, or returns the collector already registered under the
// same description (two servers' packages asking for one metric share it).
func register[C prometheus.Collector](r *Registry, c C) C {
	if r == nil {
		return c
	}
	if err := r.reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic("metrics: " + err.Error())
	}
	return c
}

// Counter registers a counter (name should end in _total) with labels.
func (r *Registry) Counter(name, help string, labels ...string) *prometheus.CounterVec {
	return register(r, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels))
}

// Gauge registers a gauge with labels.
func (r *Registry) Gauge(name, help string, labels ...string) *prometheus.GaugeVec {
	return register(r, prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, labels))
}

// Histogram registers a histogram with buckets (nil: DefBuckets) and labels.
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return register(r, prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets}, labels))
}

// GaugeFunc registers a gauge read from f at each scrape.
func (r *Registry) GaugeFunc(name, help string, f func() float64) {
	register(r, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, f))
}

// CounterFunc registers a counter read from f at each scrape (f must never
// go down).
func (r *Registry) CounterFunc(name, help string, f func() float64) {
	register(r, prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, f))
}

// Collector registers any other collector (e.g. one that reads several
// figures in one pass at scrape time).
func (r *Registry) Collector(c prometheus.Collector) {
	register(r, c)
}

// LatencyBuckets suit request and commit durations from 1 ms to 10 s.
var LatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
