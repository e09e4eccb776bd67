module github.com/bertnode/bertnode

go 1.26

require github.com/spf13/cobra v1.10.2

require (
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
)

// gotch v0.9.1 does not build against every libtorch as published: tools/gotchadapt
// copies it from the module cache into build/gotch and adapts it to the libtorch it finds.
replace github.com/sugarme/gotch => ./build/gotch
