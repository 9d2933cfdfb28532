package quota

// With returns o changed by the fields set in n: how an administrator's
// partial update (PATCH, strata tenant set) lands on a tenant's overrides.
func (o Overrides) With(n Overrides) Overrides {
	if n.EventsPerDay != nil {
		o.EventsPerDay = n.EventsPerDay
	}
	if n.StorageBytes != nil {
		o.StorageBytes = n.StorageBytes
	}
	if n.MaxBlob != nil {
		o.MaxBlob = n.MaxBlob
	}
	if n.RequestsPerSecond != nil {
		o.RequestsPerSecond = n.RequestsPerSecond
	}
	if n.Burst != nil {
		o.Burst = n.Burst
	}
	if n.Projections != nil {
		o.Projections = n.Projections
	}
	if n.CacheEntries != nil {
		o.CacheEntries = n.CacheEntries
	}
	if n.CacheBytes != nil {
		o.CacheBytes = n.CacheBytes
	}
	return o
}
