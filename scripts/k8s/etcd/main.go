// etcd server, wired exactly like go.etcd.io/etcd/server/v3/main.go of the pinned
// release (see go.mod).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
