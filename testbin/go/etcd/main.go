// Command etcd is the etcd server the integration tests run behind kube-apiserver. The go.etcd.io/etcd/v3
// root module is not importable as a library, so this is the smallest main that runs the real server.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
