; Inno Setup 6 script for the SenderGate desktop app. windows/build.ps1 runs it after PyInstaller:
;   ISCC /DAppVersion=0.1.0 /DNumericVersion=0.1.0.0 /DBundleDir=...\dist\sendergate-desktop
;        /DIconFile=...\build\sendergate-desktop\icons\sendergate.ico /DOutputDir=...\dist\installer
;        [/DSignTool=sendergate /Ssendergate="signtool.exe sign ... $f"]   (signing: see build.ps1)
;
; Upgrades: AppId never changes, so a newer setup replaces the installed version in place (same folder,
; same Start-menu entry, one entry in Apps & features). Settings (registry, HKCU\Software\SenderGate) and
; secrets (Windows Credential Manager) are the user's, outside {app}: neither an upgrade nor the
; uninstaller touches them.

#ifndef AppVersion
  #error Pass /DAppVersion=<version> (build.ps1 reads it from sendergate.__version__)
#endif
#ifndef NumericVersion
  #define NumericVersion AppVersion
#endif
#ifndef BundleDir
  #error Pass /DBundleDir=<PyInstaller's dist\sendergate-desktop>
#endif
#ifndef IconFile
  #error Pass /DIconFile=<sendergate.ico made by make_icons.py>
#endif
#ifndef OutputDir
  #define OutputDir "."
#endif

[Setup]
; Never change this GUID: it is how Windows and Inno Setup recognise an installed SenderGate to upgrade.
AppId={{D609E6CA-D888-4755-B3A9-DA20026D7E43}
AppName=SenderGate
AppVersion={#AppVersion}
AppVerName=SenderGate {#AppVersion}
AppPublisher=SenderGate
AppCopyright=SenderGate contributors, AGPL-3.0-or-later
VersionInfoVersion={#NumericVersion}
VersionInfoProductVersion={#NumericVersion}
VersionInfoProductTextVersion={#AppVersion}
; Per-user by default (no administrator needed, {autopf} is %LOCALAPPDATA%\Programs); the first page
; offers "for all users" (Program Files), and /ALLUSERS or /CURRENTUSER choose on the command line.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog commandline
DefaultDirName={autopf}\SenderGate
DefaultGroupName=SenderGate
DisableProgramGroupPage=yes
UsePreviousAppDir=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
SetupIconFile={#IconFile}
UninstallDisplayIcon={app}\sendergate-desktop.exe
UninstallDisplayName=SenderGate {#AppVersion}
OutputDir={#OutputDir}
OutputBaseFilename=SenderGate-{#AppVersion}-setup
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
; a running app holds its files open: ask to close it (Restart Manager) before replacing them
CloseApplications=yes
RestartApplications=no
#ifdef SignTool
SignTool={#SignTool}
SignedUninstaller=yes
#endif

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"
Name: "german"; MessagesFile: "compiler:Languages\German.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[InstallDelete]
; PyInstaller's folder is rebuilt every release: files the new version no longer has must not linger
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\SenderGate"; Filename: "{app}\sendergate-desktop.exe"; Comment: "Who was refused, who is waiting: approve or deny senders"
Name: "{autodesktop}\SenderGate"; Filename: "{app}\sendergate-desktop.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\sendergate-desktop.exe"; Description: "{cm:LaunchProgram,SenderGate}"; Flags: nowait postinstall skipifsilent
