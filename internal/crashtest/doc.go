// Package crashtest proves, against the real server binary, that the shop
// loses no webhook event it acknowledged and fulfils no order twice when it
// is killed (SIGKILL) or stopped (SIGTERM) under load. It holds tests only;
// `make crash` runs the long version.
package crashtest
