package blobsource

// SetTestHookAfterCopy makes every move stop after its copy when h returns
// an error (a crash between the copy and the delete).
func (d *Driver) SetTestHookAfterCopy(h func(key string) error) { d.testHookAfterCopy = h }
