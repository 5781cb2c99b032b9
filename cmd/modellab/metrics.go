package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/modellab/modellab/store"
)

// poolCollector exports the database pool's state at scrape time.
type poolCollector struct {
	db                                *store.DB
	open, inUse, idle, maxOpen, waits *prometheus.Desc
	waitSeconds                       *prometheus.Desc
}

func newPoolCollector(db *store.DB) *poolCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("modellab_db_pool_"+name, help, nil, prometheus.Labels{"engine": db.Engine()})
	}
	return &poolCollector{
		db:          db,
		open:        d("open_connections", "Connections open."),
		inUse:       d("in_use_connections", "Connections in use."),
		idle:        d("idle_connections", "Idle connections."),
		maxOpen:     d("max_connections", "Pool size bound."),
		waits:       d("waits_total", "Waits for a free connection."),
		waitSeconds: d("wait_seconds_total", "Time spent waiting for a connection."),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.open, c.inUse, c.idle, c.maxOpen, c.waits, c.waitSeconds} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.db.Stats()
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(s.Open))
	ch <- prometheus.MustNewConstMetric(c.inUse, prometheus.GaugeValue, float64(s.InUse))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(s.Idle))
	ch <- prometheus.MustNewConstMetric(c.maxOpen, prometheus.GaugeValue, float64(s.MaxOpen))
	ch <- prometheus.MustNewConstMetric(c.waits, prometheus.CounterValue, float64(s.WaitCount))
	ch <- prometheus.MustNewConstMetric(c.waitSeconds, prometheus.CounterValue, s.WaitDuration.Seconds())
}
