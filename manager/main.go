// Command itemq-manager runs one queue: it lists a source's items and runs
// one job per item through a runner. See the README.
package main

import "github.com/itemq/itemq/internal/manager/managercmd"

func main() { managercmd.Main() }
