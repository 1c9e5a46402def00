import Testing
@testable import BeanService
import BeanInspect

private let file = "/etc/beand/spool.toml"

private func problems(_ text: String) -> String? {
    do {
        _ = try ConfigLoader.parse(text, file: file)
        return nil
    } catch {
        return "\(error)"
    }
}

/// Bad `[spool]` tables with the message an operator sees (lines counted by hand).
private let badSpoolTables: [(String, String)] = [
    ("[spool]\nenabled = \"yes\"\n", "\(file):2: key 'spool.enabled': expected boolean, found string"),
    ("[spool]\ndirectory = \"spool\"\n", "\(file):2: key 'spool.directory': must be an absolute path, got 'spool'"),
    ("[spool]\ndirectory = \"/\"\n",
     "\(file):2: key 'spool.directory': must not be the root directory (the spool deletes old JPEG files under it)"),
    ("[spool]\ndirectory = \"//\"\n",
     "\(file):2: key 'spool.directory': must not be the root directory (the spool deletes old JPEG files under it)"),
    ("[spool]\ndirectory = 7\n", "\(file):2: key 'spool.directory': expected string, found integer"),
    ("[spool]\nmax_bytes = 1000\n", "\(file):2: key 'spool.max_bytes': 1000 is out of range 1048576...1125899906842624"),
    ("[spool]\nmax_bytes = 1.5e9\n", "\(file):2: key 'spool.max_bytes': expected integer, found float"),
    ("[spool]\naccepted_sample = 1.5\n",
     "\(file):2: key 'spool.accepted_sample': must be a fraction of accepted beans in [0, 1] (0.01: one in 100), got 1.5"),
    ("[spool]\naccepted_sample = -0.1\n",
     "\(file):2: key 'spool.accepted_sample': must be a fraction of accepted beans in [0, 1] (0.01: one in 100), got -0.1"),
    ("[spool]\njpeg_quality = 0\n", "\(file):2: key 'spool.jpeg_quality': 0 is out of range 1...100"),
    ("[spool]\njpeg_quality = 101\n", "\(file):2: key 'spool.jpeg_quality': 101 is out of range 1...100"),
    ("[spool]\nqueue = 0\n", "\(file):2: key 'spool.queue': 0 is out of range 1...65536"),
    ("[spool]\n\nmax_size = 5\n", "\(file):3: key 'spool.max_size': unknown key"),
]

@Test("bad [spool] → exact PATH:LINE message", arguments: badSpoolTables.indices)
func badSpoolTable(index: Int) {
    let (text, expected) = badSpoolTables[index]
    #expect(problems(text) == expected)
}

@Test func spoolDefaultsLiveInTheStateDirectory() throws {
    let config = try ConfigLoader.parse("[daemon]\nstate_dir = \"/srv/beand\"\n", file: file)
    #expect(config.spool.enabled)
    #expect(config.spool.directory == nil)
    #expect(config.spool.directory(stateDirectory: config.daemon.stateDirectory) == "/srv/beand/spool")
    #expect(config.spool.directory(stateDirectory: "/srv/beand/") == "/srv/beand/spool")
    #expect(config.spool.maxBytes == 268_435_456)
    #expect(config.spool.acceptedSample == 0.01)
    #expect(config.spool.jpegQuality == 90)
    let settings = Pipeline.spoolSettings(config)
    #expect(settings.directory == "/srv/beand/spool")
    #expect(settings.maxBytes == 268_435_456 && settings.acceptedFraction == 0.01 && settings.queueCapacity == 256)
}

@Test func spoolKeysParseMapAndRoundTrip() throws {
    let text = """
    [spool]
    enabled = false
    directory = "/data/crops"
    max_bytes = 2097152
    accepted_sample = 0
    jpeg_quality = 75
    queue = 8
    """
    let config = try ConfigLoader.parse(text, file: file)
    #expect(!config.spool.enabled)
    #expect(config.spool.directory(stateDirectory: "/var/lib/beand") == "/data/crops")
    let settings = Pipeline.spoolSettings(config)
    #expect(settings == {
        var expected = SpoolSettings(directory: "/data/crops")
        expected.enabled = false
        expected.maxBytes = 2_097_152
        expected.acceptedFraction = 0
        expected.jpegQuality = 75
        expected.queueCapacity = 8
        return expected
    }())
    #expect(try ConfigLoader.parse(config.renderedTOML, file: "rendered") == config)
}

@Test func spoolChangesAreNamedByTheReload() throws {
    let old = try ConfigLoader.parse("", file: file)
    let new = try ConfigLoader.parse("[spool]\naccepted_sample = 0.5\n", file: file)
    #expect(Daemon.changedTables(old, new) == ["spool"])
}
