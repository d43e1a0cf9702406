# Homebrew formula for tartlab: builds the tool from its source tarball with cargo, and
# installs the shell completions and man pages the binary generates. Homebrew installs
# formulae only from a tap: put this file in one (a release tap, or a local one made with
# `brew tap-new --no-git $USER/local`, as the README shows) and `brew install --HEAD` it
# until a release fills in `url` and `sha256`.
class Tartlab < Formula
  desc "Labs of Linux VMs (clusters of nodes) on Apple Silicon Macs with tart"
  homepage "https://github.com/tartlab/tartlab"
  url "https://github.com/tartlab/tartlab/archive/refs/tags/v0.1.0.tar.gz"
  # Filled in at release: `shasum -a 256` of the tarball above.
  sha256 "0000000000000000000000000000000000000000000000000000000000000000"
  license any_of: ["MIT", "Apache-2.0"]
  head "https://github.com/tartlab/tartlab.git", branch: "main"

  depends_on "rust" => :build
  depends_on arch: :arm64
  depends_on :macos

  def install
    # A tarball has no .git: the version line names the release tag instead.
    ENV["TARTLAB_COMMIT"] = build.head? ? Utils.git_short_head : "v#{version}"
    system "cargo", "install", *std_cargo_args(path: "crates/tartlab")

    generate_completions_from_executable(bin/"tartlab", "completions")
    (buildpath/"man").mkpath
    system bin/"tartlab", "man", "--dir", buildpath/"man"
    man1.install Dir[buildpath/"man/*.1"]
  end

  def caveats
    <<~EOS
      tartlab runs VMs with tart, which it does not install:
        brew install cirruslabs/cli/tart
      Then: tartlab init && tartlab doctor && tartlab up
    EOS
  end

  test do
    assert_match version.to_s, shell_output("#{bin}/tartlab --version")
    system bin/"tartlab", "init", testpath/"lab"
    assert_match "is valid", shell_output("#{bin}/tartlab validate -f #{testpath}/lab/tartlab.yaml")
    assert_path_exists man1/"tartlab.1"
  end
end
