package models

// KeyPackageIdentityPrefix starts the BasicCredential identity every key
// package must carry: "sovereign:device:" followed by the uploading
// device's id (a lower-case canonical UUID). The identity is covered by the
// leaf-node signature, so a package is bound to exactly one device.
const KeyPackageIdentityPrefix = "sovereign:device:"

// KeyPackageIdentity is the identity that key packages of deviceID carry.
func KeyPackageIdentity(deviceID string) string { return KeyPackageIdentityPrefix + deviceID }

// KeyPackageCount is a device's stock of claimable (unexpired) key packages
// for one cipher suite.
type KeyPackageCount struct {
	CipherSuite uint16
	// Normal counts the single-use packages.
	Normal int
	// LastResort reports whether a last-resort package is stored.
	LastResort bool
	// Low is Normal < the low-water mark: upload more.
	Low bool
}

// KeyPackageCounts is a device's stock per cipher suite.
type KeyPackageCounts struct {
	Suites   []KeyPackageCount
	LowWater int
	// Low is true when the device has no packages at all or any suite is low.
	Low bool
}

// ClaimedKeyPackage is one package handed out by a claim.
type ClaimedKeyPackage struct {
	DeviceID string
	Ref      []byte
	// Data is the MLSMessage(key_package) as uploaded.
	Data []byte
	// LastResort is true when the device had no normal package left and its
	// last-resort package (which stays stored) was returned.
	LastResort bool
}

// KeyPackageClaim is the result of claiming key packages of one user.
type KeyPackageClaim struct {
	UserID      string
	CipherSuite uint16
	Packages    []ClaimedKeyPackage
	// MissingDevices are active devices of the user with no claimable
	// package for the suite.
	MissingDevices []string
	// Low lists the devices whose normal packages this claim took below the
	// low-water mark (for the owner's notice; never shown to the claimer).
	Low []KeyPackageLow
}

// KeyPackageLow says that a claim took a device's normal packages for a
// suite below the low-water mark: the device should upload more.
type KeyPackageLow struct {
	DeviceID    string
	UserID      string
	CipherSuite uint16
	Remaining   int
	LowWater    int
}
