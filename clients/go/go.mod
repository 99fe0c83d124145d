module github.com/sovereign-im/sovereign/clients/go

go 1.26.0

require (
	github.com/descope/virtualwebauthn v1.0.3
	github.com/oapi-codegen/runtime v1.9.0
	github.com/tmaxmax/go-sse v0.12.0
)

require (
	github.com/apapsch/go-jsonmerge/v2 v2.0.0 // indirect
	github.com/fxamacker/cbor/v2 v2.7.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/x448/float16 v0.8.4 // indirect
)
