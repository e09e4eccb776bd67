//go:build !linux

package serve

// BackgroundThreads does nothing off Linux: the scheduling policies it sets are Linux's.
func BackgroundThreads() error { return nil }

func DefaultThreads() error { return nil }

func ForegroundThread() error { return nil }
