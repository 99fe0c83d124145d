package store

// SetSyncHook makes the store's syncer call h before each sync of the WAL
// (nil: none); an error from h fails that sync. It reports false when the
// store has no syncer (PostgreSQL, or --sqlite-synchronous NORMAL).
func SetSyncHook(s *Store, h func() error) bool {
	if s.writer.sync == nil {
		return false
	}
	if h == nil {
		s.writer.sync.hook.Store(nil)
	} else {
		s.writer.sync.hook.Store(&h)
	}
	return true
}
