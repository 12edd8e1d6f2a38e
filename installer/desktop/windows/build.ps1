# Builds the Windows installer: PyInstaller bundle -> (signed exe) -> Inno Setup setup.exe (signed).
#   powershell -File installer\desktop\windows\build.ps1 [-Dist dist] [-Work build]
#   -> dist\sendergate-desktop\ (the bundle), dist\installer\SenderGate-<version>-setup.exe
#
# Needs: Python with `pip install -e .[package]` ($env:PYTHON, default: python), Inno Setup 6
# ($env:ISCC, default: its standard install path).
# Signing, only when configured (otherwise unsigned, and it says so):
#   SIGN_CERT_FILE + SIGN_CERT_PASSWORD   a .pfx code-signing certificate, or
#   SIGN_CERT_SHA1                        the thumbprint of a certificate in the user's certificate store
#   SIGN_TIMESTAMP_URL                    RFC 3161 time-stamp server (default: DigiCert's)
#   SIGNTOOL                              signtool.exe (default: the newest in the Windows 10/11 SDK)
param(
    [string]$Dist = "dist",
    [string]$Work = "build"
)
$ErrorActionPreference = "Stop"
$root = (Resolve-Path (Join-Path $PSScriptRoot "..\..\..")).Path
Set-Location $root
$python = if ($env:PYTHON) { $env:PYTHON } else { "python" }
$Dist = [IO.Path]::GetFullPath((Join-Path $root $Dist))
$Work = [IO.Path]::GetFullPath((Join-Path $root $Work))

& $python -m PyInstaller --noconfirm --clean --log-level WARN --distpath $Dist --workpath $Work `
    installer\desktop\sendergate-desktop.spec
if ($LASTEXITCODE -ne 0) { throw "PyInstaller failed ($LASTEXITCODE)" }

$version = (& $python -c "import sendergate; print(sendergate.__version__)").Trim()
# Windows version resources take four numbers: 0.2.0rc1 -> 0.2.0.0
$parts = @([regex]::Matches($version, '\d+') | Select-Object -First 3 | ForEach-Object { $_.Value })
while ($parts.Count -lt 4) { $parts += "0" }
$numeric = $parts -join "."
$bundle = Join-Path $Dist "sendergate-desktop"
$exe = Join-Path $bundle "sendergate-desktop.exe"
$icon = Join-Path $Work "sendergate-desktop\icons\sendergate.ico"  # made by the spec (make_icons.py)

# A windowed exe has no console to print to: the exit code of --version tells whether it starts at all.
$probe = Start-Process -FilePath $exe -ArgumentList "--version" -Wait -PassThru -NoNewWindow
if ($probe.ExitCode -ne 0) { throw "$exe --version exited with $($probe.ExitCode)" }

$signArgs = $null
if ($env:SIGN_CERT_FILE) {
    if (-not (Test-Path $env:SIGN_CERT_FILE)) { throw "SIGN_CERT_FILE: no file at $env:SIGN_CERT_FILE" }
    $signArgs = @("/f", $env:SIGN_CERT_FILE)
    if ($env:SIGN_CERT_PASSWORD) { $signArgs += @("/p", $env:SIGN_CERT_PASSWORD) }
} elseif ($env:SIGN_CERT_SHA1) {
    $signArgs = @("/sha1", $env:SIGN_CERT_SHA1)
}
$isccArgs = @("/Q", "/DAppVersion=$version", "/DNumericVersion=$numeric", "/DBundleDir=$bundle",
              "/DIconFile=$icon", "/DOutputDir=$(Join-Path $Dist 'installer')")
if ($signArgs) {
    $signtool = $env:SIGNTOOL
    if (-not $signtool) {
        $found = Get-ChildItem "${env:ProgramFiles(x86)}\Windows Kits\10\bin\*\x64\signtool.exe" -ErrorAction SilentlyContinue |
            Sort-Object FullName -Descending | Select-Object -First 1
        if (-not $found) { throw "signing is configured but signtool.exe was not found (set SIGNTOOL)" }
        $signtool = $found.FullName
    }
    $timestamp = if ($env:SIGN_TIMESTAMP_URL) { $env:SIGN_TIMESTAMP_URL } else { "http://timestamp.digicert.com" }
    $common = @("sign") + $signArgs + @("/fd", "sha256", "/tr", $timestamp, "/td", "sha256")
    # the app itself (Start menu and SmartScreen show its signature), then Inno Setup signs setup and uninstaller
    & $signtool @common $exe
    if ($LASTEXITCODE -ne 0) { throw "signtool failed on $exe" }
    # Inno Setup's sign tool: $f is the file to sign, $q a double quote
    $quoted = ($common | ForEach-Object { if ($_ -match '\s') { '$q' + $_ + '$q' } else { $_ } }) -join " "
    $isccArgs += @("/DSignTool=sendergate", "/Ssendergate=`$q$signtool`$q $quoted `$f")
    Write-Host "signing with $signtool"
} else {
    Write-Host "no SIGN_CERT_FILE or SIGN_CERT_SHA1: building an unsigned installer"
}

$iscc = if ($env:ISCC) { $env:ISCC } else { "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe" }
if (-not (Test-Path $iscc)) { throw "Inno Setup 6 not found at $iscc (install it or set ISCC)" }
& $iscc @isccArgs installer\desktop\windows\sendergate.iss
if ($LASTEXITCODE -ne 0) { throw "ISCC failed ($LASTEXITCODE)" }
Write-Host "installer: $(Join-Path $Dist "installer\SenderGate-$version-setup.exe")"
