; Inno Setup 6 script: the Fireside installer for Windows (x64).
;
; Built by `python packaging\build.py windows`, which runs:
;   ISCC /DAppVersion=0.1.0 /DSourceDir=build\package\Fireside /DOutputDir=dist
;        /DIconFile=assets\fireside.ico packaging\windows\fireside.iss
; and writes dist\Fireside-<version>-windows-setup.exe.
;
; Installs per user by default (no administrator rights; the dialog offers all users), adds Start
; menu and optional desktop shortcuts, registers .gguf files to open with Fireside, and optionally
; puts fireside-cli.exe's folder on the user's PATH. Models are never removed on uninstall: they live
; in %LOCALAPPDATA%\fireside\fireside\models.
; UNTESTED here (built and tested on Linux only); see packaging\README.md.

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\build\package\Fireside"
#endif
#ifndef OutputDir
  #define OutputDir "..\..\dist"
#endif
#ifndef IconFile
  #define IconFile "..\..\assets\fireside.ico"
#endif

[Setup]
; AppId identifies the app across versions (upgrades, uninstall): never change it.
AppId={{6C3F5D0B-2E7A-4C1D-9B8E-F1A2D3C4B5E6}
AppName=Fireside
AppVersion={#AppVersion}
AppVerName=Fireside {#AppVersion}
AppPublisher=Fireside
AppComments=Run large language models locally on your CPU
DefaultDirName={autopf}\Fireside
DefaultGroupName=Fireside
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
ChangesAssociations=yes
ChangesEnvironment=yes
OutputDir={#OutputDir}
OutputBaseFilename=Fireside-{#AppVersion}-windows-setup
SetupIconFile={#IconFile}
UninstallDisplayIcon={app}\Fireside.exe
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
MinVersion=10.0

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "addtopath"; Description: "Add fireside-cli to the PATH (use Fireside from a terminal)"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\Fireside"; Filename: "{app}\Fireside.exe"
Name: "{autodesktop}\Fireside"; Filename: "{app}\Fireside.exe"; Tasks: desktopicon

[Registry]
; .gguf -> Fireside.gguf ProgID -> "Fireside.exe" "%1". HKA is HKCU for a per-user install, HKLM for all users.
Root: HKA; Subkey: "Software\Classes\.gguf\OpenWithProgids"; ValueType: string; ValueName: "Fireside.gguf"; ValueData: ""; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\Fireside.gguf"; ValueType: string; ValueName: ""; ValueData: "GGUF language model"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\Fireside.gguf\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\Fireside.exe,0"
Root: HKA; Subkey: "Software\Classes\Fireside.gguf\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\Fireside.exe"" ""%1"""
Root: HKA; Subkey: "Software\Classes\Applications\Fireside.exe\SupportedTypes"; ValueType: string; ValueName: ".gguf"; ValueData: ""; Flags: uninsdeletekey
; The user's PATH (HKCU even for an all-users install: the task is per user).
Root: HKCU; Subkey: "Environment"; ValueType: expandsz; ValueName: "Path"; ValueData: "{olddata};{app}"; Tasks: addtopath; Check: NeedsAddPath(ExpandConstant('{app}'))

[Run]
Filename: "{app}\Fireside.exe"; Description: "{cm:LaunchProgram,Fireside}"; Flags: nowait postinstall skipifsilent

[Code]
{ True when Dir is not already one of the entries of the user's PATH. }
function NeedsAddPath(Dir: string): Boolean;
var
  Path: string;
begin
  if not RegQueryStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Path) then
  begin
    Result := True;
    exit;
  end;
  Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Path) + ';') = 0;
end;

{ On uninstall, take the install folder back out of the user's PATH. }
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  Path, Augmented, Dir: string;
  P: Integer;
begin
  if CurUninstallStep <> usPostUninstall then
    exit;
  if not RegQueryStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Path) then
    exit;
  Dir := ExpandConstant('{app}');
  Augmented := ';' + Path + ';';
  P := Pos(';' + Uppercase(Dir) + ';', Uppercase(Augmented));
  if P > 0 then
  begin
    Delete(Augmented, P, Length(Dir) + 1);  { ";<dir>", keeping the separator after it }
    Path := Copy(Augmented, 2, Length(Augmented) - 2);
    RegWriteExpandStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Path);
  end;
end;
