package bff_test

import (
	"fmt"

	"github.com/gobff/bff"
)

// A Redis master watched by three sentinels, reached with TLS as an ACL
// user. NewPool dials nothing; it only checks the configuration.
func ExampleRedisConfig_NewPool() {
	pool, err := bff.RedisConfig{
		URL:        "rediss://bff:secret@/0", // no host: the sentinels name the master
		Sentinels:  []string{"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"},
		MasterName: "mymaster",
	}.NewPool()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	// bff.New(bff.Options{…, Redis: pool})

	// A mistake names the field, and never repeats the password.
	_, err = bff.RedisConfig{URL: "rediss://bff:secret@redis.example:6380/0", Sentinels: []string{"10.0.0.1:26379"},
		MasterName: "mymaster"}.NewPool()
	fmt.Println(err)
	// Output:
	// bff: RedisConfig.URL must have no host with Sentinels (the sentinels name the master): write it as rediss://user:password@/0
}
