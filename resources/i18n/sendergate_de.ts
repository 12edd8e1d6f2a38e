<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="de">
<context>
    <name></name>
    <message>
        <source>Unencrypted connection</source>
        <translation>Unverschlüsselte Verbindung</translation>
    </message>
    <message>
        <source>%1 uses plain http and is not this computer. Your API token would travel over the network unencrypted, readable by anyone on the way.

Send it anyway?</source>
        <translation>%1 verwendet einfaches http und ist nicht dieser Computer. Ihr API-Token würde unverschlüsselt durchs Netz gehen, lesbar für jeden auf dem Weg.

Trotzdem senden?</translation>
    </message>
    <message>
        <source>set up the connection again (File → Connection…) or ask for a new token.</source>
        <translation>richten Sie die Verbindung neu ein (Datei → Verbindung…) oder fragen Sie nach einem neuen Token.</translation>
    </message>
    <message>
        <source>SenderGate: something went wrong</source>
        <translation>SenderGate: Etwas ist schiefgegangen</translation>
    </message>
    <message>
        <source>SenderGate ran into a problem it did not expect. You can keep working; if it happens again, please send this report to whoever looks after your gateway.</source>
        <translation>SenderGate ist auf ein unerwartetes Problem gestoßen. Sie können weiterarbeiten; wenn es wieder passiert, senden Sie diesen Bericht bitte an die Person, die Ihr Gateway betreut.</translation>
    </message>
    <message>
        <source>Error report</source>
        <translation>Fehlerbericht</translation>
    </message>
    <message>
        <source>Copy report</source>
        <translation>Bericht kopieren</translation>
    </message>
    <message>
        <source>&amp;Whose:</source>
        <translation>&amp;Wessen:</translation>
    </message>
    <message>
        <source>Whose pending senders and activity</source>
        <translation>Wessen wartende Absender und Aktivität</translation>
    </message>
    <message>
        <source>Everyone</source>
        <translation>Alle</translation>
    </message>
    <message>
        <source>Pages</source>
        <translation>Seiten</translation>
    </message>
    <message>
        <source>&amp;File</source>
        <translation>&amp;Datei</translation>
    </message>
    <message>
        <source>&amp;Refresh</source>
        <translation>&amp;Aktualisieren</translation>
    </message>
    <message>
        <source>&amp;Connection…</source>
        <translation>&amp;Verbindung…</translation>
    </message>
    <message>
        <source>&amp;Notify about new pending senders</source>
        <translation>Bei neuen wartenden Absendern &amp;benachrichtigen</translation>
    </message>
    <message>
        <source>&amp;Keep running in the tray when the window is closed</source>
        <translation>Beim Schließen des Fensters im Infobereich &amp;weiterlaufen</translation>
    </message>
    <message>
        <source>&amp;Start at login</source>
        <translation>Bei der Anmeldung &amp;starten</translation>
    </message>
    <message>
        <source>&amp;Quit</source>
        <translation>&amp;Beenden</translation>
    </message>
    <message>
        <source>&amp;Edit</source>
        <translation>&amp;Bearbeiten</translation>
    </message>
    <message>
        <source>&amp;Undo</source>
        <translation>&amp;Rückgängig</translation>
    </message>
    <message>
        <source>&amp;View</source>
        <translation>&amp;Ansicht</translation>
    </message>
    <message>
        <source>&amp;Help</source>
        <translation>&amp;Hilfe</translation>
    </message>
    <message>
        <source>&amp;About SenderGate</source>
        <translation>&amp;Über SenderGate</translation>
    </message>
    <message>
        <source>&amp;Undo %1</source>
        <translation>%1 &amp;rückgängig machen</translation>
    </message>
    <message>
        <source>&amp;Digest mail</source>
        <translation>&amp;Zusammenfassung per Mail</translation>
    </message>
    <message>
        <source>&amp;Off</source>
        <translation>&amp;Aus</translation>
    </message>
    <message>
        <source>D&amp;aily</source>
        <translation>&amp;Täglich</translation>
    </message>
    <message>
        <source>&amp;Weekly</source>
        <translation>&amp;Wöchentlich</translation>
    </message>
    <message>
        <source>Digest mail: %1</source>
        <translation>Zusammenfassung per Mail: %1</translation>
    </message>
    <message>
        <source>About SenderGate</source>
        <translation>Über SenderGate</translation>
    </message>
    <message>
        <source>SenderGate Desktop %1
Connected to %2</source>
        <translation>SenderGate Desktop %1
Verbunden mit %2</translation>
    </message>
    <message>
        <source>This desktop has no system tray.</source>
        <translation>Diese Arbeitsumgebung hat keinen Infobereich.</translation>
    </message>
    <message>
        <source>Could not change start at login: %1</source>
        <translation>Start bei der Anmeldung ließ sich nicht ändern: %1</translation>
    </message>
    <message>
        <source>SenderGate will start when you log in.</source>
        <translation>SenderGate startet, wenn Sie sich anmelden.</translation>
    </message>
    <message>
        <source>SenderGate will no longer start when you log in.</source>
        <translation>SenderGate startet nicht mehr bei der Anmeldung.</translation>
    </message>
    <message>
        <source>● live</source>
        <translation>● live</translation>
    </message>
    <message>
        <source>Connected to %1; new senders appear as they arrive.</source>
        <translation>Verbunden mit %1; neue Absender erscheinen, sobald sie ankommen.</translation>
    </message>
    <message>
        <source>offline — retrying</source>
        <translation>offline — neuer Versuch läuft</translation>
    </message>
    <message>
        <source>connecting…</source>
        <translation>verbinde…</translation>
    </message>
    <message>
        <source>Connection: %1</source>
        <translation>Verbindung: %1</translation>
    </message>
    <message>
        <source>Gateway unreachable (%1). Showing what was loaded; retrying.</source>
        <translation>Gateway nicht erreichbar (%1). Angezeigt wird, was schon geladen war; neuer Versuch läuft.</translation>
    </message>
    <message>
        <source>Delivered</source>
        <translation>Zugestellt</translation>
    </message>
    <message>
        <source>Screened</source>
        <translation>Vorsortiert</translation>
    </message>
    <message>
        <source>Challenged</source>
        <translation>Rückfrage</translation>
    </message>
    <message>
        <source>Bulk</source>
        <translation>Massenpost</translation>
    </message>
    <message>
        <source>Virus</source>
        <translation>Virus</translation>
    </message>
    <message>
        <source>Spam</source>
        <translation>Spam</translation>
    </message>
    <message>
        <source>%1: nothing seen yet.</source>
        <translation>%1: noch nichts gesehen.</translation>
    </message>
    <message numerus="yes">
        <source>%1: more than %n event(s) (the newest: %2), first seen %3, last seen %4</source>
        <translation>
            <numerusform>%1: mehr als %n Ereignis (das neueste: %2), zuerst %3, zuletzt %4</numerusform>
            <numerusform>%1: mehr als %n Ereignisse (die neuesten: %2), zuerst %3, zuletzt %4</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>%1: %n event(s) (%2), first seen %3, last seen %4</source>
        <translation>
            <numerusform>%1: %n Ereignis (%2), zuerst %3, zuletzt %4</numerusform>
            <numerusform>%1: %n Ereignisse (%2), zuerst %3, zuletzt %4</numerusform>
        </translation>
    </message>
    <message>
        <source>Blocked</source>
        <translation>Gesperrt</translation>
    </message>
    <message>
        <source>Allowed</source>
        <translation>Erlaubt</translation>
    </message>
    <message>
        <source>everyone (global)</source>
        <translation>alle (global)</translation>
    </message>
    <message>
        <source>you</source>
        <translation>Sie</translation>
    </message>
    <message>
        <source>decides today</source>
        <translation>entscheidet heute</translation>
    </message>
    <message>
        <source>Sender history</source>
        <translation>Absender-Verlauf</translation>
    </message>
    <message>
        <source>Show events from</source>
        <translation>Ereignisse zeigen von</translation>
    </message>
    <message>
        <source>Events from this sender</source>
        <translation>Ereignisse dieses Absenders</translation>
    </message>
    <message>
        <source>List entries that match</source>
        <translation>Passende Listeneinträge</translation>
    </message>
    <message>
        <source>List entries that match this sender</source>
        <translation>Listeneinträge zu diesem Absender</translation>
    </message>
    <message>
        <source>Allow &amp;sender</source>
        <translation>&amp;Absender erlauben</translation>
    </message>
    <message>
        <source>Allow this sender</source>
        <translation>Diesen Absender erlauben</translation>
    </message>
    <message>
        <source>Allow everyone at this domain</source>
        <translation>Alle dieser Domain erlauben</translation>
    </message>
    <message>
        <source>Block this sender (or the domain shown)</source>
        <translation>Diesen Absender (oder die gezeigte Domain) sperren</translation>
    </message>
    <message>
        <source>&amp;Remove entry</source>
        <translation>Eintrag &amp;entfernen</translation>
    </message>
    <message>
        <source>Remove the selected list entry</source>
        <translation>Den ausgewählten Listeneintrag entfernen</translation>
    </message>
    <message>
        <source>Re&amp;load</source>
        <translation>&amp;Neu laden</translation>
    </message>
    <message>
        <source>Load the history again (F5)</source>
        <translation>Verlauf neu laden (F5)</translation>
    </message>
    <message>
        <source>History of %1</source>
        <translation>Verlauf von %1</translation>
    </message>
    <message>
        <source>This sender</source>
        <translation>Dieser Absender</translation>
    </message>
    <message>
        <source>Everyone at %1</source>
        <translation>Alle bei %1</translation>
    </message>
    <message>
        <source>No allow or block entry matches this sender.</source>
        <translation>Kein Erlaubt- oder Sperreintrag passt zu diesem Absender.</translation>
    </message>
    <message>
        <source>Nothing from this sender yet.</source>
        <translation>Noch nichts von diesem Absender.</translation>
    </message>
    <message>
        <source>Nothing from this domain yet.</source>
        <translation>Noch nichts von dieser Domain.</translation>
    </message>
    <message numerus="yes">
        <source>%n event(s) shown, newest first</source>
        <translation>
            <numerusform>%n Ereignis, neuestes zuerst</numerusform>
            <numerusform>%n Ereignisse, neueste zuerst</numerusform>
        </translation>
    </message>
    <message>
        <source>The history could not be loaded: %1</source>
        <translation>Der Verlauf konnte nicht geladen werden: %1</translation>
    </message>
    <message>
        <source>That did not work: %1</source>
        <translation>Das hat nicht geklappt: %1</translation>
    </message>
    <message>
        <source>from the sender history</source>
        <translation>aus dem Absender-Verlauf</translation>
    </message>
    <message>
        <source>Allowed %1.</source>
        <translation>%1 erlaubt.</translation>
    </message>
    <message>
        <source>Removed %1.</source>
        <translation>%1 entfernt.</translation>
    </message>
    <message>
        <source>Removed %1</source>
        <translation>%1 entfernt</translation>
    </message>
    <message>
        <source>History of this sender…</source>
        <translation>Verlauf dieses Absenders…</translation>
    </message>
    <message>
        <source>This row has no sender history (the null sender &lt;&gt;, or a mailing-list entry).</source>
        <translation>Diese Zeile hat keinen Absender-Verlauf (leerer Absender &lt;&gt; oder Mailinglisten-Eintrag).</translation>
    </message>
    <message>
        <source>Relay denied</source>
        <translation>Weiterleitung verweigert</translation>
    </message>
    <message>
        <source>Unknown recipient</source>
        <translation>Unbekannter Empfänger</translation>
    </message>
    <message>
        <source>Temporary failure</source>
        <translation>Vorübergehender Fehler</translation>
    </message>
    <message>
        <source>Observed</source>
        <translation>Beobachtet</translation>
    </message>
    <message>
        <source>Verified domain</source>
        <translation>Domain bestätigt</translation>
    </message>
    <message>
        <source>Could not verify</source>
        <translation>Nicht prüfbar</translation>
    </message>
    <message>
        <source>Failed verification</source>
        <translation>Prüfung fehlgeschlagen</translation>
    </message>
    <message>
        <source>Not checked</source>
        <translation>Nicht geprüft</translation>
    </message>
    <message>
        <source>name hidden: it looked like an address</source>
        <translation>Name ausgeblendet: er sah wie eine Adresse aus</translation>
    </message>
    <message numerus="yes">
        <source>CAPTCHA: %n wrong answer(s)</source>
        <translation>
            <numerusform>CAPTCHA: %n falsche Antwort</numerusform>
            <numerusform>CAPTCHA: %n falsche Antworten</numerusform>
        </translation>
    </message>
    <message>
        <source>CAPTCHA not tried</source>
        <translation>CAPTCHA nicht versucht</translation>
    </message>
    <message numerus="yes">
        <source>%n earlier refusal(s) since %1</source>
        <translation>
            <numerusform>%n frühere Abweisung seit %1</numerusform>
            <numerusform>%n frühere Abweisungen seit %1</numerusform>
        </translation>
    </message>
    <message>
        <source>First contact</source>
        <translation>Erster Kontakt</translation>
    </message>
    <message>
        <source>also wrote to %1</source>
        <translation>schrieb auch an %1</translation>
    </message>
    <message>
        <source>First %1, latest %2</source>
        <translation>Zuerst %1, zuletzt %2</translation>
    </message>
    <message numerus="yes">
        <source>%n message(s)</source>
        <translation>
            <numerusform>%n Nachricht</numerusform>
            <numerusform>%n Nachrichten</numerusform>
        </translation>
    </message>
    <message>
        <source>Sender</source>
        <translation>Absender</translation>
    </message>
    <message>
        <source>Subject</source>
        <translation>Betreff</translation>
    </message>
    <message>
        <source>(no subject)</source>
        <translation>(kein Betreff)</translation>
    </message>
    <message>
        <source>When</source>
        <translation>Wann</translation>
    </message>
    <message>
        <source>Domain</source>
        <translation>Domain</translation>
    </message>
    <message>
        <source>Recipient</source>
        <translation>Empfänger</translation>
    </message>
    <message>
        <source>Added by hand</source>
        <translation>Von Hand hinzugefügt</translation>
    </message>
    <message>
        <source>Confirmed (CAPTCHA)</source>
        <translation>Bestätigt (CAPTCHA)</translation>
    </message>
    <message>
        <source>Approved in the app</source>
        <translation>In der App erlaubt</translation>
    </message>
    <message>
        <source>Imported</source>
        <translation>Importiert</translation>
    </message>
    <message>
        <source>Entry</source>
        <translation>Eintrag</translation>
    </message>
    <message>
        <source>Note</source>
        <translation>Notiz</translation>
    </message>
    <message>
        <source>Source</source>
        <translation>Herkunft</translation>
    </message>
    <message>
        <source>Added</source>
        <translation>Hinzugefügt</translation>
    </message>
    <message>
        <source>Expires</source>
        <translation>Läuft ab</translation>
    </message>
    <message>
        <source>never</source>
        <translation>nie</translation>
    </message>
    <message>
        <source>Time</source>
        <translation>Zeit</translation>
    </message>
    <message>
        <source>Verdict</source>
        <translation>Entscheidung</translation>
    </message>
    <message>
        <source>Reason</source>
        <translation>Grund</translation>
    </message>
    <message>
        <source>Sign-up address</source>
        <translation>Anmeldeadresse</translation>
    </message>
    <message>
        <source>Loading…</source>
        <translation>Lädt…</translation>
    </message>
    <message>
        <source>Messages</source>
        <translation>Nachrichten</translation>
    </message>
    <message>
        <source>Latest subject</source>
        <translation>Letzter Betreff</translation>
    </message>
    <message>
        <source>Latest</source>
        <translation>Zuletzt</translation>
    </message>
    <message>
        <source>Outcome</source>
        <translation>Ergebnis</translation>
    </message>
    <message>
        <source>Allowed %1: their mail now reaches the inbox.</source>
        <translation>%1 erlaubt: Diese Post kommt jetzt im Posteingang an.</translation>
    </message>
    <message>
        <source>Blocked %1.</source>
        <translation>%1 gesperrt.</translation>
    </message>
    <message>
        <source>Allowed %1</source>
        <translation>%1 erlaubt</translation>
    </message>
    <message>
        <source>Blocked %1</source>
        <translation>%1 gesperrt</translation>
    </message>
    <message>
        <source>From header</source>
        <translation>From-Kopfzeile</translation>
    </message>
    <message>
        <source>Client</source>
        <translation>Client</translation>
    </message>
    <message>
        <source>Message-ID</source>
        <translation>Message-ID</translation>
    </message>
    <message>
        <source>Size</source>
        <translation>Größe</translation>
    </message>
    <message>
        <source>Spam score</source>
        <translation>Spam-Wert</translation>
    </message>
    <message>
        <source>Details</source>
        <translation>Details</translation>
    </message>
    <message>
        <source>Activity</source>
        <translation>Aktivität</translation>
    </message>
    <message>
        <source>Show %1</source>
        <translation>%1 anzeigen</translation>
    </message>
    <message>
        <source>Show only these verdicts (several can be on)</source>
        <translation>Nur diese Entscheidungen zeigen (mehrere möglich)</translation>
    </message>
    <message>
        <source>Search sender, recipient or subject</source>
        <translation>Absender, Empfänger oder Betreff suchen</translation>
    </message>
    <message>
        <source>Search the activity</source>
        <translation>Aktivität durchsuchen</translation>
    </message>
    <message>
        <source>Activity log</source>
        <translation>Aktivitätsprotokoll</translation>
    </message>
    <message>
        <source>Details of the selected decision</source>
        <translation>Details der gewählten Entscheidung</translation>
    </message>
    <message>
        <source>Select a row to see everything recorded about it.</source>
        <translation>Wählen Sie eine Zeile, um alles zu sehen, was dazu aufgezeichnet wurde.</translation>
    </message>
    <message numerus="yes">
        <source>%n decision(s) shown</source>
        <translation>
            <numerusform>%n Entscheidung angezeigt</numerusform>
            <numerusform>%n Entscheidungen angezeigt</numerusform>
        </translation>
    </message>
    <message>
        <source>Allow sender</source>
        <translation>Absender erlauben</translation>
    </message>
    <message>
        <source>Allow sender&apos;s domain</source>
        <translation>Domain des Absenders erlauben</translation>
    </message>
    <message>
        <source>Block sender</source>
        <translation>Absender sperren</translation>
    </message>
    <message>
        <source>No decisions match this filter. Turn off a verdict button or clear the search to see more.</source>
        <translation>Keine Entscheidung passt zu diesem Filter. Schalten Sie eine Entscheidungs-Schaltfläche aus oder leeren Sie die Suche, um mehr zu sehen.</translation>
    </message>
    <message>
        <source>No decisions yet. Every message the gateway accepts or refuses for you will show up here.</source>
        <translation>Noch keine Entscheidungen. Jede Nachricht, die das Gateway für Sie annimmt oder abweist, erscheint hier.</translation>
    </message>
    <message>
        <source>The null sender &lt;&gt; (bounces) cannot be put on a list.</source>
        <translation>Der leere Absender &lt;&gt; (Unzustellbarkeitsnachrichten) kann nicht auf eine Liste.</translation>
    </message>
    <message>
        <source>Cannot use the sender %1: %2</source>
        <translation>Absender %1 nicht verwendbar: %2</translation>
    </message>
    <message>
        <source>from the activity log</source>
        <translation>aus dem Aktivitätsprotokoll</translation>
    </message>
    <message>
        <source>Import</source>
        <translation>Import</translation>
    </message>
    <message>
        <source>Allow the people you already know: read an address book or your mail account, check who to allow, and import.</source>
        <translation>Erlauben Sie den Leuten, die Sie schon kennen: Lesen Sie ein Adressbuch oder Ihr E-Mail-Konto, wählen Sie aus, wen Sie erlauben, und importieren Sie.</translation>
    </message>
    <message>
        <source>Open &amp;address book…</source>
        <translation>&amp;Adressbuch öffnen…</translation>
    </message>
    <message>
        <source>vCard (.vcf), CSV from Outlook, Google or Thunderbird, LDIF, or Thunderbird&apos;s abook.sqlite</source>
        <translation>vCard (.vcf), CSV aus Outlook, Google oder Thunderbird, LDIF oder Thunderbirds abook.sqlite</translation>
    </message>
    <message>
        <source>Open an address book file</source>
        <translation>Eine Adressbuch-Datei öffnen</translation>
    </message>
    <message>
        <source>Read my &amp;mail account</source>
        <translation>&amp;E-Mail-Konto lesen</translation>
    </message>
    <message>
        <source>Whom you wrote to (the Sent folder) and whose mail you answered</source>
        <translation>Wem Sie geschrieben haben (Ordner „Gesendet“) und wessen E-Mails Sie beantwortet haben</translation>
    </message>
    <message>
        <source>Read the IMAP account</source>
        <translation>Das IMAP-Konto lesen</translation>
    </message>
    <message>
        <source>No source read yet.</source>
        <translation>Noch keine Quelle gelesen.</translation>
    </message>
    <message>
        <source>Filter the preview</source>
        <translation>Vorschau filtern</translation>
    </message>
    <message>
        <source>Select all &amp;new</source>
        <translation>Alle &amp;neuen auswählen</translation>
    </message>
    <message>
        <source>Select n&amp;one</source>
        <translation>&amp;Keine auswählen</translation>
    </message>
    <message>
        <source>Import preview</source>
        <translation>Import-Vorschau</translation>
    </message>
    <message>
        <source>Import progress</source>
        <translation>Import-Fortschritt</translation>
    </message>
    <message>
        <source>Cancel</source>
        <translation>Abbrechen</translation>
    </message>
    <message>
        <source>Cancel the import</source>
        <translation>Den Import abbrechen</translation>
    </message>
    <message>
        <source>Sign in to the mail account again</source>
        <translation>Erneut beim E-Mail-Konto anmelden</translation>
    </message>
    <message>
        <source>Signed in again. Reading the mail account carries on where it stopped.</source>
        <translation>Wieder angemeldet. Das Lesen des E-Mail-Kontos setzt dort fort, wo es aufgehört hat.</translation>
    </message>
    <message>
        <source>Keep up with your mail</source>
        <translation>Mit Ihren E-Mails Schritt halten</translation>
    </message>
    <message>
        <source>Re-sync the mail account every</source>
        <translation>E-Mail-Konto erneut abgleichen alle</translation>
    </message>
    <message>
        <source>Re-sync the mail account periodically</source>
        <translation>E-Mail-Konto regelmäßig erneut abgleichen</translation>
    </message>
    <message>
        <source>Reads only mail that is new since the last import, allows the people you wrote to, and lets replies to your mail through.</source>
        <translation>Liest nur E-Mails, die seit dem letzten Import neu sind, erlaubt den Leuten, denen Sie geschrieben haben, und lässt Antworten auf Ihre E-Mails durch.</translation>
    </message>
    <message>
        <source> min</source>
        <translation> Min.</translation>
    </message>
    <message>
        <source>Minutes between re-syncs</source>
        <translation>Minuten zwischen den Abgleichen</translation>
    </message>
    <message>
        <source>&amp;Import selected (%1)</source>
        <translation>Ausgewählte &amp;importieren (%1)</translation>
    </message>
    <message>
        <source>Set up a mail account (File → Connection…) to use this.</source>
        <translation>Richten Sie dafür ein E-Mail-Konto ein (Datei → Verbindung…).</translation>
    </message>
    <message>
        <source>Open an address book</source>
        <translation>Ein Adressbuch öffnen</translation>
    </message>
    <message>
        <source>Address books (%1)</source>
        <translation>Adressbücher (%1)</translation>
    </message>
    <message>
        <source>All files (*)</source>
        <translation>Alle Dateien (*)</translation>
    </message>
    <message>
        <source>Reading %1…</source>
        <translation>%1 wird gelesen…</translation>
    </message>
    <message>
        <source>No mail account is set up: add one in File → Connection…</source>
        <translation>Kein E-Mail-Konto eingerichtet: Fügen Sie eines unter Datei → Verbindung… hinzu</translation>
    </message>
    <message>
        <source>Reading the mail account %1…</source>
        <translation>Das E-Mail-Konto %1 wird gelesen…</translation>
    </message>
    <message>
        <source>%1 — addresses: %2 (%3 new, %4 already allowed); skipped: %5</source>
        <translation>%1 — Adressen: %2 (%3 neu, %4 schon erlaubt); übersprungen: %5</translation>
    </message>
    <message>
        <source>New messages read: %1. Sent Message-IDs newly registered (replies to them reach you): %2.</source>
        <translation>Neue Nachrichten gelesen: %1. Message-IDs gesendeter E-Mails neu hinterlegt (Antworten darauf erreichen Sie): %2.</translation>
    </message>
    <message>
        <source>Reading was cancelled: this is what was read until then.</source>
        <translation>Das Lesen wurde abgebrochen: Das hier wurde bis dahin gelesen.</translation>
    </message>
    <message>
        <source>%1 — the addresses read until then are shown.</source>
        <translation>%1 — die bis dahin gelesenen Adressen werden angezeigt.</translation>
    </message>
    <message>
        <source>Could not read the source.</source>
        <translation>Die Quelle konnte nicht gelesen werden.</translation>
    </message>
    <message>
        <source>imported from %1</source>
        <translation>importiert aus %1</translation>
    </message>
    <message>
        <source>Importing…</source>
        <translation>Import läuft…</translation>
    </message>
    <message>
        <source>The import stopped after %1 of %2 addresses (%3 added). Importing again is safe.</source>
        <translation>Der Import hielt nach %1 von %2 Adressen an (%3 hinzugefügt). Erneutes Importieren ist unbedenklich.</translation>
    </message>
    <message>
        <source>%1 added, %2 were already allowed, %3 invalid</source>
        <translation>%1 hinzugefügt, %2 waren schon erlaubt, %3 ungültig</translation>
    </message>
    <message>
        <source>Import cancelled after %1 of %2 addresses: %3. The others were not imported; importing again is safe.</source>
        <translation>Import nach %1 von %2 Adressen abgebrochen: %3. Die übrigen wurden nicht importiert; erneutes Importieren ist unbedenklich.</translation>
    </message>
    <message>
        <source>Import finished: %1.</source>
        <translation>Import abgeschlossen: %1.</translation>
    </message>
    <message>
        <source>Cancelling…</source>
        <translation>Wird abgebrochen…</translation>
    </message>
    <message>
        <source>On, while SenderGate runs.</source>
        <translation>An, solange SenderGate läuft.</translation>
    </message>
    <message>
        <source>Off.</source>
        <translation>Aus.</translation>
    </message>
    <message>
        <source>(re-sync)</source>
        <translation>(Abgleich)</translation>
    </message>
    <message>
        <source>Re-syncing…</source>
        <translation>Abgleich läuft…</translation>
    </message>
    <message>
        <source>Mail account re-synced. New messages read: %1; newly allowed: %2.</source>
        <translation>E-Mail-Konto abgeglichen. Neue Nachrichten gelesen: %1; neu erlaubt: %2.</translation>
    </message>
    <message>
        <source>The mail account re-sync failed: %1</source>
        <translation>Der Abgleich des E-Mail-Kontos ist fehlgeschlagen: %1</translation>
    </message>
    <message>
        <source>No password for the mail account is saved: enter it in File → Connection…</source>
        <translation>Für das E-Mail-Konto ist kein Passwort gespeichert: Geben Sie es unter Datei → Verbindung… ein</translation>
    </message>
    <message>
        <source>Edit %1</source>
        <translation>%1 bearbeiten</translation>
    </message>
    <message>
        <source>&amp;Note:</source>
        <translation>&amp;Notiz:</translation>
    </message>
    <message>
        <source>&amp;Expires</source>
        <translation>&amp;Läuft ab</translation>
    </message>
    <message>
        <source>Expiry</source>
        <translation>Ablauf</translation>
    </message>
    <message>
        <source>bob@example.com, @example.com or list:dev.lists.example.org</source>
        <translation>bob@example.com, @example.com oder list:dev.lists.example.org</translation>
    </message>
    <message>
        <source>New entry</source>
        <translation>Neuer Eintrag</translation>
    </message>
    <message>
        <source>Note (optional)</source>
        <translation>Notiz (optional)</translation>
    </message>
    <message>
        <source>Note for the new entry</source>
        <translation>Notiz zum neuen Eintrag</translation>
    </message>
    <message>
        <source>for 48 h</source>
        <translation>für 48 h</translation>
    </message>
    <message>
        <source>The new entry expires in 48 hours</source>
        <translation>Der neue Eintrag läuft in 48 Stunden ab</translation>
    </message>
    <message>
        <source>A&amp;dd</source>
        <translation>&amp;Hinzufügen</translation>
    </message>
    <message>
        <source>Add the entry</source>
        <translation>Eintrag hinzufügen</translation>
    </message>
    <message>
        <source>Search</source>
        <translation>Suchen</translation>
    </message>
    <message>
        <source>Search entries</source>
        <translation>Einträge durchsuchen</translation>
    </message>
    <message>
        <source>&amp;Edit…</source>
        <translation>&amp;Bearbeiten…</translation>
    </message>
    <message>
        <source>Edit the note and expiry (Enter)</source>
        <translation>Notiz und Ablauf bearbeiten (Eingabe)</translation>
    </message>
    <message>
        <source>&amp;Remove</source>
        <translation>&amp;Entfernen</translation>
    </message>
    <message>
        <source>Remove the selected entries (Delete)</source>
        <translation>Gewählte Einträge entfernen (Entf)</translation>
    </message>
    <message>
        <source>E&amp;xport CSV…</source>
        <translation>CSV e&amp;xportieren…</translation>
    </message>
    <message>
        <source>Save the list as a CSV file</source>
        <translation>Liste als CSV-Datei speichern</translation>
    </message>
    <message>
        <source>Your allowlist is empty. Add an address or an @domain above, or bring in your contacts on the Import page.</source>
        <translation>Ihre Erlaubt-Liste ist leer. Fügen Sie oben eine Adresse oder eine @Domain hinzu oder übernehmen Sie Ihre Kontakte auf der Seite „Import“.</translation>
    </message>
    <message>
        <source>No entry matches “%1”.</source>
        <translation>Kein Eintrag passt zu „%1“.</translation>
    </message>
    <message>
        <source>Added %1.</source>
        <translation>%1 hinzugefügt.</translation>
    </message>
    <message>
        <source>Added %1</source>
        <translation>%1 hinzugefügt</translation>
    </message>
    <message numerus="yes">
        <source>Removed %n entry(s).</source>
        <translation>
            <numerusform>%n Eintrag entfernt.</numerusform>
            <numerusform>%n Einträge entfernt.</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>Removed %n entry(s)</source>
        <translation>
            <numerusform>%n Eintrag entfernt</numerusform>
            <numerusform>%n Einträge entfernt</numerusform>
        </translation>
    </message>
    <message>
        <source>Export as CSV</source>
        <translation>Als CSV exportieren</translation>
    </message>
    <message>
        <source>CSV files (*.csv)</source>
        <translation>CSV-Dateien (*.csv)</translation>
    </message>
    <message numerus="yes">
        <source>Saved %n entry(s) to </source>
        <translation>
            <numerusform>%n Eintrag gespeichert in </numerusform>
            <numerusform>%n Einträge gespeichert in </numerusform>
        </translation>
    </message>
    <message>
        <source>Allowlist</source>
        <translation>Erlaubt-Liste</translation>
    </message>
    <message>
        <source>Blocklist</source>
        <translation>Sperrliste</translation>
    </message>
    <message>
        <source>Your blocklist is empty. Block a sender from Activity, Pending or Screened, or add one above.</source>
        <translation>Ihre Sperrliste ist leer. Sperren Sie Absender unter „Aktivität“, „Wartend“ oder „Vorsortiert“ oder fügen Sie oben einen hinzu.</translation>
    </message>
    <message>
        <source>Enforce</source>
        <translation>Durchsetzen</translation>
    </message>
    <message>
        <source>Observe</source>
        <translation>Beobachten</translation>
    </message>
    <message>
        <source>Off</source>
        <translation>Aus</translation>
    </message>
    <message>
        <source>Unknown senders are asked to confirm they are a person. Viruses and spam are refused.</source>
        <translation>Unbekannte Absender werden gebeten zu bestätigen, dass sie ein Mensch sind. Viren und Spam werden abgewiesen.</translation>
    </message>
    <message>
        <source>Everything but viruses and spam is delivered; what would have been challenged is counted as “Observed”. Suggested for the first week.</source>
        <translation>Alles außer Viren und Spam wird zugestellt; was eine Bestätigung gebraucht hätte, wird als „Beobachtet“ gezählt. Empfohlen für die erste Woche.</translation>
    </message>
    <message>
        <source>Only viruses and spam are refused; everything else is delivered.</source>
        <translation>Nur Viren und Spam werden abgewiesen; alles andere wird zugestellt.</translation>
    </message>
    <message>
        <source>Overview</source>
        <translation>Übersicht</translation>
    </message>
    <message>
        <source>Pending senders</source>
        <translation>Wartende Absender</translation>
    </message>
    <message>
        <source>Today %1</source>
        <translation>Heute %1</translation>
    </message>
    <message>
        <source>Yesterday %1</source>
        <translation>Gestern %1</translation>
    </message>
    <message>
        <source>Today</source>
        <translation>Heute</translation>
    </message>
    <message>
        <source>Yesterday</source>
        <translation>Gestern</translation>
    </message>
    <message>
        <source>Today: %1</source>
        <translation>Heute: %1</translation>
    </message>
    <message>
        <source>Mailbox mode</source>
        <translation>Postfach-Modus</translation>
    </message>
    <message>
        <source>Last 30 days</source>
        <translation>Letzte 30 Tage</translation>
    </message>
    <message>
        <source>Decisions per day over the last 30 days</source>
        <translation>Entscheidungen pro Tag in den letzten 30 Tagen</translation>
    </message>
    <message>
        <source>New here? Try Observe for a week first.</source>
        <translation>Neu hier? Probieren Sie zuerst eine Woche lang Beobachten.</translation>
    </message>
    <message>
        <source>Mailbox mode: %1</source>
        <translation>Postfach-Modus: %1</translation>
    </message>
    <message>
        <source>Pending</source>
        <translation>Wartend</translation>
    </message>
    <message>
        <source>&amp;Approve</source>
        <translation>&amp;Erlauben</translation>
    </message>
    <message>
        <source>Allow these senders (A)</source>
        <translation>Diese Absender erlauben (A)</translation>
    </message>
    <message>
        <source>&amp;Deny</source>
        <translation>&amp;Ablehnen</translation>
    </message>
    <message>
        <source>Block these senders; their links stop working (D)</source>
        <translation>Diese Absender sperren; ihre Links funktionieren nicht mehr (D)</translation>
    </message>
    <message>
        <source>Allow do&amp;main</source>
        <translation>Do&amp;main erlauben</translation>
    </message>
    <message>
        <source>To</source>
        <translation>An</translation>
    </message>
    <message>
        <source>CAPTCHA</source>
        <translation>CAPTCHA</translation>
    </message>
    <message>
        <source>History</source>
        <translation>Verlauf</translation>
    </message>
    <message>
        <source>not loaded yet</source>
        <translation>noch nicht geladen</translation>
    </message>
    <message>
        <source>Allow the senders&apos; whole domains (M)</source>
        <translation>Die ganzen Domains der Absender erlauben (M)</translation>
    </message>
    <message>
        <source>Filter</source>
        <translation>Filter</translation>
    </message>
    <message>
        <source>Filter pending senders</source>
        <translation>Wartende Absender filtern</translation>
    </message>
    <message>
        <source>The selected sender</source>
        <translation>Der ausgewählte Absender</translation>
    </message>
    <message>
        <source>Select a sender to see who they are and what we know of them.</source>
        <translation>Wählen Sie einen Absender, um zu sehen, wer es ist und was über ihn bekannt ist.</translation>
    </message>
    <message>
        <source>Approve</source>
        <translation>Erlauben</translation>
    </message>
    <message>
        <source>Allow domain</source>
        <translation>Domain erlauben</translation>
    </message>
    <message>
        <source>Deny</source>
        <translation>Ablehnen</translation>
    </message>
    <message>
        <source>Nobody is waiting.</source>
        <translation>Niemand wartet.</translation>
    </message>
    <message numerus="yes">
        <source>%n sender(s) waiting</source>
        <translation>
            <numerusform>%n Absender wartet</numerusform>
            <numerusform>%n Absender warten</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>Approved %n sender(s)</source>
        <translation>
            <numerusform>%n Absender erlaubt</numerusform>
            <numerusform>%n Absender erlaubt</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>Denied %n sender(s)</source>
        <translation>
            <numerusform>%n Absender abgelehnt</numerusform>
            <numerusform>%n Absender abgelehnt</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>Allowed the domains of %n sender(s)</source>
        <translation>
            <numerusform>Domain von %n Absender erlaubt</numerusform>
            <numerusform>Domains von %n Absendern erlaubt</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>%n failed: </source>
        <translation>
            <numerusform>%n fehlgeschlagen: </numerusform>
            <numerusform>%n fehlgeschlagen: </numerusform>
        </translation>
    </message>
    <message>
        <source>Automated mail from senders you have not chosen yet: receipts, newsletters, notifications. Allow a sender to get their mail in your inbox, or block them.</source>
        <translation>Automatische Post von Absendern, über die Sie noch nicht entschieden haben: Quittungen, Newsletter, Benachrichtigungen. Erlauben Sie einen Absender, damit seine Post im Posteingang landet, oder sperren Sie ihn.</translation>
    </message>
    <message>
        <source>&amp;Allow</source>
        <translation>&amp;Erlauben</translation>
    </message>
    <message>
        <source>Allow this sender (A)</source>
        <translation>Diesen Absender erlauben (A)</translation>
    </message>
    <message>
        <source>&amp;Block</source>
        <translation>&amp;Sperren</translation>
    </message>
    <message>
        <source>Block this sender (B)</source>
        <translation>Diesen Absender sperren (B)</translation>
    </message>
    <message>
        <source>Filter screened senders</source>
        <translation>Vorsortierte Absender filtern</translation>
    </message>
    <message>
        <source>Screened senders</source>
        <translation>Vorsortierte Absender</translation>
    </message>
    <message>
        <source>No sender matches “%1”.</source>
        <translation>Kein Absender passt zu „%1“.</translation>
    </message>
    <message>
        <source>No automated senders are waiting for a choice. Receipts and newsletters the gateway screens for you will show up here.</source>
        <translation>Keine automatischen Absender warten auf eine Wahl. Belege und Newsletter, die das Gateway für Sie vorsortiert, erscheinen hier.</translation>
    </message>
    <message>
        <source>from the Screened page</source>
        <translation>von der Seite „Vorsortiert“</translation>
    </message>
    <message>
        <source>Connect to your SenderGate</source>
        <translation>Mit Ihrem SenderGate verbinden</translation>
    </message>
    <message>
        <source>Gateway address</source>
        <translation>Gateway-Adresse</translation>
    </message>
    <message>
        <source>&amp;Gateway address:</source>
        <translation>&amp;Gateway-Adresse:</translation>
    </message>
    <message>
        <source>API token</source>
        <translation>API-Token</translation>
    </message>
    <message>
        <source>&lt;b&gt;Warning:&lt;/b&gt; this address uses plain http and is not this computer. Your token would travel over the network unencrypted, readable by anyone on the way. Use https:// unless you know this network is private.</source>
        <translation>&lt;b&gt;Warnung:&lt;/b&gt; Diese Adresse verwendet einfaches http und ist nicht dieser Computer. Ihr Token würde unverschlüsselt durchs Netz gehen, lesbar für jeden auf dem Weg. Verwenden Sie https://, außer Sie wissen, dass dieses Netz privat ist.</translation>
    </message>
    <message>
        <source>Send my token over this unencrypted connection anyway</source>
        <translation>Mein Token trotzdem über diese unverschlüsselte Verbindung senden</translation>
    </message>
    <message>
        <source>Accept the unencrypted connection</source>
        <translation>Unverschlüsselte Verbindung akzeptieren</translation>
    </message>
    <message>
        <source>Test &amp;connection</source>
        <translation>Verbindung &amp;testen</translation>
    </message>
    <message>
        <source>Test connection</source>
        <translation>Verbindung testen</translation>
    </message>
    <message>
        <source>IMAP account (optional, for importing the people you write to)</source>
        <translation>IMAP-Konto (optional, um die Leute zu importieren, denen Sie schreiben)</translation>
    </message>
    <message>
        <source>IMAP server</source>
        <translation>IMAP-Server</translation>
    </message>
    <message>
        <source>&amp;Server:</source>
        <translation>&amp;Server:</translation>
    </message>
    <message>
        <source>IMAP port</source>
        <translation>IMAP-Port</translation>
    </message>
    <message>
        <source>&amp;Port:</source>
        <translation>&amp;Port:</translation>
    </message>
    <message>
        <source>IMAP connection security</source>
        <translation>Verbindungssicherheit für IMAP</translation>
    </message>
    <message>
        <source>TLS (port 993)</source>
        <translation>TLS (Port 993)</translation>
    </message>
    <message>
        <source>STARTTLS (port 143)</source>
        <translation>STARTTLS (Port 143)</translation>
    </message>
    <message>
        <source>None (only for a server on this computer)</source>
        <translation>Keine (nur für einen Server auf diesem Computer)</translation>
    </message>
    <message>
        <source>Securit&amp;y:</source>
        <translation>Sic&amp;herheit:</translation>
    </message>
    <message>
        <source>IMAP user name</source>
        <translation>IMAP-Benutzername</translation>
    </message>
    <message>
        <source>&amp;User:</source>
        <translation>&amp;Benutzer:</translation>
    </message>
    <message>
        <source>How SenderGate logs in to the mail account</source>
        <translation>Wie sich SenderGate beim E-Mail-Konto anmeldet</translation>
    </message>
    <message>
        <source>Password</source>
        <translation>Passwort</translation>
    </message>
    <message>
        <source>Sign in with Microsoft 365</source>
        <translation>Mit Microsoft 365 anmelden</translation>
    </message>
    <message>
        <source>Sign in with Google</source>
        <translation>Mit Google anmelden</translation>
    </message>
    <message>
        <source>Sign in with another provider (custom endpoints)</source>
        <translation>Bei einem anderen Anbieter anmelden (eigene Endpunkte)</translation>
    </message>
    <message>
        <source>&amp;Log in with:</source>
        <translation>Anme&amp;ldung mit:</translation>
    </message>
    <message>
        <source>IMAP password or app password</source>
        <translation>IMAP-Passwort oder App-Passwort</translation>
    </message>
    <message>
        <source>saved in the keychain</source>
        <translation>im Schlüsselbund gespeichert</translation>
    </message>
    <message>
        <source>password or app password</source>
        <translation>Passwort oder App-Passwort</translation>
    </message>
    <message>
        <source>Pass&amp;word:</source>
        <translation>Pass&amp;wort:</translation>
    </message>
    <message>
        <source>Test &amp;mail account</source>
        <translation>E-&amp;Mail-Konto testen</translation>
    </message>
    <message>
        <source>Test the IMAP account</source>
        <translation>Das IMAP-Konto testen</translation>
    </message>
    <message>
        <source>Keep the token and password for this session only (you will be asked again next time)</source>
        <translation>Token und Passwort nur für diese Sitzung behalten (beim nächsten Mal werden Sie erneut gefragt)</translation>
    </message>
    <message>
        <source>Keep secrets for this session only</source>
        <translation>Geheimnisse nur für diese Sitzung behalten</translation>
    </message>
    <message>
        <source>The token and password will be kept in %1.</source>
        <translation>Token und Passwort werden in %1 aufbewahrt.</translation>
    </message>
    <message>
        <source>&lt;b&gt;This computer has no keychain SenderGate can use&lt;/b&gt;, so the token and password cannot be saved safely. SenderGate never writes them to a settings file.</source>
        <translation>&lt;b&gt;Dieser Computer hat keinen Schlüsselbund, den SenderGate nutzen kann&lt;/b&gt;, deshalb können Token und Passwort nicht sicher gespeichert werden. SenderGate schreibt sie nie in eine Einstellungsdatei.</translation>
    </message>
    <message>
        <source>OAuth client ID</source>
        <translation>OAuth-Client-ID</translation>
    </message>
    <message>
        <source>registered by your administrator</source>
        <translation>von Ihrem Administrator registriert</translation>
    </message>
    <message>
        <source>OAuth client secret (if the provider issued one)</source>
        <translation>OAuth-Client-Geheimnis (falls der Anbieter eines ausgegeben hat)</translation>
    </message>
    <message>
        <source>only if the provider issued one</source>
        <translation>nur falls der Anbieter eines ausgegeben hat</translation>
    </message>
    <message>
        <source>Authorization address</source>
        <translation>Autorisierungsadresse</translation>
    </message>
    <message>
        <source>Token address</source>
        <translation>Token-Adresse</translation>
    </message>
    <message>
        <source>Scopes</source>
        <translation>Bereiche (Scopes)</translation>
    </message>
    <message>
        <source>IMAP access and offline access, space-separated</source>
        <translation>IMAP-Zugriff und Offline-Zugriff, durch Leerzeichen getrennt</translation>
    </message>
    <message>
        <source>Revocation address (optional)</source>
        <translation>Widerrufsadresse (optional)</translation>
    </message>
    <message>
        <source>optional: where a sign-in is withdrawn (RFC 7009)</source>
        <translation>optional: wo eine Anmeldung widerrufen wird (RFC 7009)</translation>
    </message>
    <message>
        <source>Client I&amp;D:</source>
        <translation>Client-I&amp;D:</translation>
    </message>
    <message>
        <source>Client sec&amp;ret:</source>
        <translation>Client-Ge&amp;heimnis:</translation>
    </message>
    <message>
        <source>Authori&amp;zation address:</source>
        <translation>Autori&amp;sierungsadresse:</translation>
    </message>
    <message>
        <source>To&amp;ken address:</source>
        <translation>To&amp;ken-Adresse:</translation>
    </message>
    <message>
        <source>Sc&amp;opes:</source>
        <translation>Bere&amp;iche (Scopes):</translation>
    </message>
    <message>
        <source>Re&amp;vocation address:</source>
        <translation>Wider&amp;rufsadresse:</translation>
    </message>
    <message>
        <source>Sig&amp;n in with %1…</source>
        <translation>Bei %1 a&amp;nmelden…</translation>
    </message>
    <message>
        <source>Sig&amp;n in…</source>
        <translation>A&amp;nmelden…</translation>
    </message>
    <message>
        <source>Signed in (the tokens are in the keychain).</source>
        <translation>Angemeldet (die Tokens liegen im Schlüsselbund).</translation>
    </message>
    <message>
        <source>Not signed in yet.</source>
        <translation>Noch nicht angemeldet.</translation>
    </message>
    <message>
        <source>Not a pairing code or link: %1</source>
        <translation>Kein Kopplungscode und kein Link: %1</translation>
    </message>
    <message>
        <source>Pairing…</source>
        <translation>Wird gekoppelt…</translation>
    </message>
    <message>
        <source>Paired: this computer is the device “%1” of %2. Save to finish.</source>
        <translation>Gekoppelt: Dieser Computer ist das Gerät „%1“ von %2. Zum Abschließen speichern.</translation>
    </message>
    <message>
        <source>Enter the API token.</source>
        <translation>Geben Sie das API-Token ein.</translation>
    </message>
    <message>
        <source>Confirm the unencrypted connection first, or use https://.</source>
        <translation>Bestätigen Sie zuerst die unverschlüsselte Verbindung, oder verwenden Sie https://.</translation>
    </message>
    <message>
        <source>Enter the pairing code or link your administrator gave you (sendergate users invite … or the Staff page makes one): this computer gets its own key. An API token works too.</source>
        <translation>Geben Sie den Kopplungscode oder Link ein, den Sie von Ihrem Administrator bekommen haben (sendergate users invite … oder die Seite „Mitarbeiter“ erzeugt ihn): Dieser Computer erhält einen eigenen Schlüssel. Ein API-Token funktioniert auch.</translation>
    </message>
    <message>
        <source>ABCDE-23456, or the link</source>
        <translation>ABCDE-23456 oder der Link</translation>
    </message>
    <message>
        <source>Pairing code or link</source>
        <translation>Kopplungscode oder Link</translation>
    </message>
    <message>
        <source>Pairing &amp;code or link:</source>
        <translation>Kopplungs&amp;code oder Link:</translation>
    </message>
    <message>
        <source>This computer&apos;s name</source>
        <translation>Name dieses Computers</translation>
    </message>
    <message>
        <source>This computer&apos;s &amp;name:</source>
        <translation>&amp;Name dieses Computers:</translation>
    </message>
    <message>
        <source>&amp;Pair this computer</source>
        <translation>Diesen Computer &amp;koppeln</translation>
    </message>
    <message>
        <source>Pair this computer</source>
        <translation>Diesen Computer koppeln</translation>
    </message>
    <message>
        <source>or an API &amp;token:</source>
        <translation>oder ein API-&amp;Token:</translation>
    </message>
    <message>
        <source>Connecting…</source>
        <translation>Verbinde…</translation>
    </message>
    <message>
        <source>Connected. This token belongs to %1.</source>
        <translation>Verbunden. Dieses Token gehört zu %1.</translation>
    </message>
    <message>
        <source>Enter the password (or app password) of the mail account.</source>
        <translation>Geben Sie das Passwort (oder App-Passwort) des E-Mail-Kontos ein.</translation>
    </message>
    <message>
        <source>Logged in. Sent mail is read from the folder %1.</source>
        <translation>Angemeldet. Gesendete E-Mails werden aus dem Ordner %1 gelesen.</translation>
    </message>
    <message>
        <source>Test the connection before saving.</source>
        <translation>Testen Sie die Verbindung vor dem Speichern.</translation>
    </message>
    <message>
        <source>Show SenderGate</source>
        <translation>SenderGate zeigen</translation>
    </message>
    <message>
        <source>Quit</source>
        <translation>Beenden</translation>
    </message>
    <message>
        <source>SenderGate: offline — retrying</source>
        <translation>SenderGate: offline — neuer Versuch läuft</translation>
    </message>
    <message numerus="yes">
        <source>SenderGate: %n pending sender(s)</source>
        <translation>
            <numerusform>SenderGate: %n wartender Absender</numerusform>
            <numerusform>SenderGate: %n wartende Absender</numerusform>
        </translation>
    </message>
    <message>
        <source>SenderGate: nothing pending</source>
        <translation>SenderGate: niemand wartet</translation>
    </message>
    <message numerus="yes">
        <source>%n new pending sender(s)</source>
        <translation>
            <numerusform>%n neuer wartender Absender</numerusform>
            <numerusform>%n neue wartende Absender</numerusform>
        </translation>
    </message>
    <message>
        <source>New pending sender</source>
        <translation>Neuer wartender Absender</translation>
    </message>
    <message>
        <source>SenderGate is still running</source>
        <translation>SenderGate läuft weiter</translation>
    </message>
    <message>
        <source>It keeps watching for new senders here in the tray. To quit, choose Quit from this icon&apos;s menu.</source>
        <translation>Es achtet hier im Infobereich weiter auf neue Absender. Zum Beenden wählen Sie „Beenden“ im Menü dieses Symbols.</translation>
    </message>
    <message>
        <source>Dismiss message</source>
        <translation>Meldung schließen</translation>
    </message>
    <message>
        <source>IMAP (your mail)</source>
        <translation>IMAP (Ihre E-Mails)</translation>
    </message>
    <message>
        <source>yes</source>
        <translation>ja</translation>
    </message>
    <message>
        <source>yes, by %1</source>
        <translation>ja, durch %1</translation>
    </message>
    <message>
        <source>invalid</source>
        <translation>ungültig</translation>
    </message>
    <message>
        <source>no</source>
        <translation>nein</translation>
    </message>
    <message>
        <source>Address</source>
        <translation>Adresse</translation>
    </message>
    <message>
        <source>Name</source>
        <translation>Name</translation>
    </message>
    <message>
        <source>Written to</source>
        <translation>Angeschrieben</translation>
    </message>
    <message>
        <source>Messages you sent to or answered: %1</source>
        <translation>Nachrichten, die Sie an diese Adresse gesendet oder beantwortet haben: %1</translation>
    </message>
    <message>
        <source>Last message</source>
        <translation>Letzte Nachricht</translation>
    </message>
    <message>
        <source>Already allowed</source>
        <translation>Schon erlaubt</translation>
    </message>
    <message>
        <source>Your allowlist entry %1 already lets this address in; importing it keeps it allowed should that entry go.</source>
        <translation>Ihr Eintrag %1 in der Erlaubt-Liste lässt diese Adresse schon durch; importiert bleibt sie erlaubt, auch wenn dieser Eintrag entfällt.</translation>
    </message>
    <message>
        <source>Enter the IMAP server&apos;s name.</source>
        <translation>Geben Sie den Namen des IMAP-Servers ein.</translation>
    </message>
    <message>
        <source>Enter the IMAP user name.</source>
        <translation>Geben Sie den IMAP-Benutzernamen ein.</translation>
    </message>
    <message>
        <source>%1 is not this computer: use TLS or STARTTLS, or the password would travel over the network unencrypted.</source>
        <translation>%1 ist nicht dieser Computer: Verwenden Sie TLS oder STARTTLS, sonst würde das Passwort unverschlüsselt durchs Netz gehen.</translation>
    </message>
    <message>
        <source>The re-sync was stopped before it finished; the next one carries on.</source>
        <translation>Der Abgleich wurde vor dem Ende angehalten; der nächste macht weiter.</translation>
    </message>
    <message>
        <source>your provider</source>
        <translation>Ihr Anbieter</translation>
    </message>
    <message>
        <source>Enter the client ID your administrator registered with %1 for SenderGate.</source>
        <translation>Geben Sie die Client-ID ein, die Ihr Administrator bei %1 für SenderGate registriert hat.</translation>
    </message>
    <message>
        <source>authorization address</source>
        <translation>Autorisierungsadresse</translation>
    </message>
    <message>
        <source>token address</source>
        <translation>Token-Adresse</translation>
    </message>
    <message>
        <source>The %1 %2 must be an https:// address (plain http only to this computer).</source>
        <translation>Die %1 %2 muss eine https://-Adresse sein (einfaches http nur zu diesem Computer).</translation>
    </message>
    <message>
        <source>Enter the scopes that allow IMAP access (your provider documents them).</source>
        <translation>Geben Sie die Bereiche (Scopes) ein, die IMAP-Zugriff erlauben (Ihr Anbieter dokumentiert sie).</translation>
    </message>
    <message>
        <source>The sign-in server answered without an access token.</source>
        <translation>Der Anmeldeserver hat ohne Zugriffstoken geantwortet.</translation>
    </message>
    <message>
        <source>The sign-in server gave no refresh token, so SenderGate would have to ask you to sign in every hour. Check the scopes (offline access).</source>
        <translation>Der Anmeldeserver hat kein Aktualisierungstoken ausgegeben; SenderGate müsste Sie dann stündlich neu anmelden lassen. Prüfen Sie die Bereiche (Offline-Zugriff).</translation>
    </message>
    <message>
        <source>You are not signed in to the mail account (%1): sign in again.</source>
        <translation>Sie sind beim E-Mail-Konto (%1) nicht angemeldet: Melden Sie sich erneut an.</translation>
    </message>
    <message>
        <source>The token address must be an https:// address (plain http only to this computer).</source>
        <translation>Die Token-Adresse muss eine https://-Adresse sein (einfaches http nur zu diesem Computer).</translation>
    </message>
    <message>
        <source>Cannot reach the sign-in server %1 (%2); try again later. Nothing was lost.</source>
        <translation>Der Anmeldeserver %1 ist nicht erreichbar (%2); versuchen Sie es später erneut. Es ging nichts verloren.</translation>
    </message>
    <message>
        <source>The sign-in server %1 answered HTTP %2 without a readable reply.</source>
        <translation>Der Anmeldeserver %1 hat mit HTTP %2 ohne lesbare Antwort geantwortet.</translation>
    </message>
    <message>
        <source>Your sign-in to the mail account (%1) has expired or was withdrawn: sign in again. Nothing was lost; the import carries on where it stopped.</source>
        <translation>Ihre Anmeldung beim E-Mail-Konto (%1) ist abgelaufen oder wurde widerrufen: Melden Sie sich erneut an. Es ging nichts verloren; der Import setzt dort fort, wo er aufgehört hat.</translation>
    </message>
    <message>
        <source>The sign-in server refused: %1</source>
        <translation>Der Anmeldeserver hat abgelehnt: %1</translation>
    </message>
    <message>
        <source>The sign-in server did not accept the answer from the browser: sign in again.</source>
        <translation>Der Anmeldeserver hat die Antwort aus dem Browser nicht angenommen: Melden Sie sich erneut an.</translation>
    </message>
    <message>
        <source>Sign-in cancelled.</source>
        <translation>Anmeldung abgebrochen.</translation>
    </message>
    <message>
        <source>No answer from the browser within %1 minutes: sign in again.</source>
        <translation>Keine Antwort aus dem Browser innerhalb von %1 Minuten: Melden Sie sich erneut an.</translation>
    </message>
    <message>
        <source>The pasted address does not belong to this sign-in (its state differs): sign in again.</source>
        <translation>Die eingefügte Adresse gehört nicht zu dieser Anmeldung (ihr „state“ weicht ab): Melden Sie sich erneut an.</translation>
    </message>
    <message>
        <source>You did not allow SenderGate to read your mail.</source>
        <translation>Sie haben SenderGate nicht erlaubt, Ihre E-Mails zu lesen.</translation>
    </message>
    <message>
        <source>The sign-in failed: %1</source>
        <translation>Die Anmeldung ist fehlgeschlagen: %1</translation>
    </message>
    <message>
        <source>The sign-in answer held no code.</source>
        <translation>Die Antwort der Anmeldung enthielt keinen Code.</translation>
    </message>
    <message>
        <source>Not found.</source>
        <translation>Nicht gefunden.</translation>
    </message>
    <message>
        <source>This answer does not belong to the sign-in SenderGate started, so it was ignored.</source>
        <translation>Diese Antwort gehört nicht zu der Anmeldung, die SenderGate begonnen hat, und wurde daher ignoriert.</translation>
    </message>
    <message>
        <source>You can close this tab.</source>
        <translation>Sie können diesen Tab schließen.</translation>
    </message>
    <message>
        <source>Signed in. You can close this tab and go back to SenderGate.</source>
        <translation>Angemeldet. Sie können diesen Tab schließen und zu SenderGate zurückkehren.</translation>
    </message>
    <message>
        <source>Sign in to the mail account in the browser</source>
        <translation>Im Browser beim E-Mail-Konto anmelden</translation>
    </message>
    <message>
        <source>Waiting for the browser</source>
        <translation>Warten auf den Browser</translation>
    </message>
    <message>
        <source>Stop waiting for the browser</source>
        <translation>Nicht mehr auf den Browser warten</translation>
    </message>
    <message>
        <source>The sign-in address, to open by hand</source>
        <translation>Die Anmeldeadresse, zum Öffnen von Hand</translation>
    </message>
    <message>
        <source>No browser? Open:</source>
        <translation>Kein Browser? Öffnen:</translation>
    </message>
    <message>
        <source>Or paste where it ended:</source>
        <translation>Oder einfügen, wo er landete:</translation>
    </message>
    <message>
        <source>The address the browser ended on, or the code</source>
        <translation>Die Adresse, bei der der Browser gelandet ist, oder der Code</translation>
    </message>
    <message>
        <source>Us&amp;e</source>
        <translation>V&amp;erwenden</translation>
    </message>
    <message>
        <source>Cannot wait for the browser&apos;s answer: %1</source>
        <translation>Kann nicht auf die Antwort des Browsers warten: %1</translation>
    </message>
    <message>
        <source>Waiting for you to sign in with %1 in your browser…</source>
        <translation>Warten, bis Sie sich im Browser bei %1 angemeldet haben…</translation>
    </message>
    <message>
        <source>Signed in.</source>
        <translation>Angemeldet.</translation>
    </message>
    <message>
        <source>Device</source>
        <translation>Gerät</translation>
    </message>
    <message>
        <source>Paired</source>
        <translation>Gekoppelt</translation>
    </message>
    <message>
        <source>Last used</source>
        <translation>Zuletzt benutzt</translation>
    </message>
    <message>
        <source> (this computer)</source>
        <translation> (dieser Computer)</translation>
    </message>
    <message>
        <source>Revoke device</source>
        <translation>Gerät sperren</translation>
    </message>
    <message>
        <source>Revoke “%1”? It can no longer see or decide anything until it is paired again.</source>
        <translation>„%1“ sperren? Es kann nichts mehr sehen oder entscheiden, bis es neu gekoppelt wird.</translation>
    </message>
    <message>
        <source>Devices</source>
        <translation>Geräte</translation>
    </message>
    <message>
        <source>The computers and scripts with a key to your account. Revoke one you lost or no longer use; pair a new one with a code from your administrator.</source>
        <translation>Die Computer und Skripte mit einem Schlüssel zu Ihrem Konto. Sperren Sie eines, das verloren ist oder nicht mehr genutzt wird; ein neues koppeln Sie mit einem Code von Ihrem Administrator.</translation>
    </message>
    <message>
        <source>Your devices</source>
        <translation>Ihre Geräte</translation>
    </message>
    <message>
        <source>&amp;Revoke</source>
        <translation>&amp;Sperren</translation>
    </message>
    <message>
        <source>Revoke the selected device</source>
        <translation>Das ausgewählte Gerät sperren</translation>
    </message>
    <message>
        <source>No device holds a key to your account. Pair one with a code from your administrator.</source>
        <translation>Kein Gerät hat einen Schlüssel zu Ihrem Konto. Koppeln Sie eines mit einem Code Ihres Administrators.</translation>
    </message>
    <message>
        <source>Revoked “%1”.</source>
        <translation>„%1“ gesperrt.</translation>
    </message>
    <message>
        <source>Pairing code</source>
        <translation>Kopplungscode</translation>
    </message>
    <message>
        <source>Pairing link</source>
        <translation>Kopplungslink</translation>
    </message>
    <message>
        <source>Copy &amp;code</source>
        <translation>&amp;Code kopieren</translation>
    </message>
    <message>
        <source>Copy &amp;link</source>
        <translation>&amp;Link kopieren</translation>
    </message>
    <message>
        <source>Pairing code:</source>
        <translation>Kopplungscode:</translation>
    </message>
    <message>
        <source>Link:</source>
        <translation>Link:</translation>
    </message>
    <message>
        <source>For %1: works once, until %2. In the app&apos;s setup they type the code or paste the link.</source>
        <translation>Für %1: gilt einmal, bis %2. In der Einrichtung der App den Code eintippen oder den Link einfügen.</translation>
    </message>
    <message>
        <source>Add a person</source>
        <translation>Person hinzufügen</translation>
    </message>
    <message>
        <source>&amp;Address:</source>
        <translation>&amp;Adresse:</translation>
    </message>
    <message>
        <source>&amp;Name:</source>
        <translation>&amp;Name:</translation>
    </message>
    <message>
        <source>Staff</source>
        <translation>Mitarbeiter</translation>
    </message>
    <message>
        <source>&amp;Add a person…</source>
        <translation>Person &amp;hinzufügen…</translation>
    </message>
    <message>
        <source>New pairing &amp;code</source>
        <translation>Neuer Kopplungs&amp;code</translation>
    </message>
    <message>
        <source>A one-time code for the selected person&apos;s next computer</source>
        <translation>Ein einmaliger Code für den nächsten Computer der ausgewählten Person</translation>
    </message>
    <message>
        <source>People</source>
        <translation>Personen</translation>
    </message>
    <message>
        <source>Also receives</source>
        <translation>Empfängt auch</translation>
    </message>
    <message>
        <source>Mode</source>
        <translation>Modus</translation>
    </message>
    <message>
        <source>The person&apos;s devices</source>
        <translation>Die Geräte der Person</translation>
    </message>
    <message>
        <source>&amp;Revoke device</source>
        <translation>Gerät &amp;sperren</translation>
    </message>
    <message>
        <source> (admin)</source>
        <translation> (Admin)</translation>
    </message>
    <message>
        <source>Nobody here yet. Add the people of your office with “Add a person…”.</source>
        <translation>Noch niemand hier. Fügen Sie die Personen Ihres Büros mit „Person hinzufügen…“ hinzu.</translation>
    </message>
    <message>
        <source>No devices yet. Give them a pairing code with “New pairing code”.</source>
        <translation>Noch keine Geräte. Geben Sie der Person mit „Neuer Kopplungscode“ einen Kopplungscode.</translation>
    </message>
    <message>
        <source>Choose a person above to see their devices.</source>
        <translation>Wählen Sie oben eine Person, um ihre Geräte zu sehen.</translation>
    </message>
    <message>
        <source>Devices of %1:</source>
        <translation>Geräte von %1:</translation>
    </message>
    <message>
        <source>Choose a person to see their devices.</source>
        <translation>Wählen Sie eine Person, um ihre Geräte zu sehen.</translation>
    </message>
    <message>
        <source>Added %1. Pass the pairing code on to them.</source>
        <translation>%1 hinzugefügt. Geben Sie den Kopplungscode an die Person weiter.</translation>
    </message>
    <message>
        <source>Getting started</source>
        <translation>Erste Schritte</translation>
    </message>
    <message>
        <source>Connect this app to your gateway</source>
        <translation>Diese App mit Ihrem Gateway verbinden</translation>
    </message>
    <message>
        <source>Import the people you know (address book or mail account)</source>
        <translation>Die Menschen importieren, die Sie kennen (Adressbuch oder Mailkonto)</translation>
    </message>
    <message>
        <source>Choose the mailbox mode (Observe first is suggested)</source>
        <translation>Den Postfach-Modus wählen (zuerst „Beobachten“ empfohlen)</translation>
    </message>
    <message>
        <source>Turn on the digest mail of new pending senders</source>
        <translation>Die Zusammenfassung neuer wartender Absender per Mail einschalten</translation>
    </message>
    <message>
        <source>&amp;Import…</source>
        <translation>&amp;Importieren…</translation>
    </message>
    <message>
        <source>Choose &amp;mode…</source>
        <translation>&amp;Modus wählen…</translation>
    </message>
    <message>
        <source>Mail me &amp;daily</source>
        <translation>&amp;Täglich mailen</translation>
    </message>
    <message>
        <source>Hide this list</source>
        <translation>Diese Liste ausblenden</translation>
    </message>
    <message>
        <source>Could not ask the gateway: %1</source>
        <translation>Die Anfrage an das Gateway ging schief: %1</translation>
    </message>
    <message>
        <source>Done</source>
        <translation>Erledigt</translation>
    </message>
    <message>
        <source>Not done yet</source>
        <translation>Noch offen</translation>
    </message>
    <message>
        <source>Confirmed</source>
        <translation>Bestätigt</translation>
    </message>
    <message>
        <source>Approved</source>
        <translation>Erlaubt</translation>
    </message>
    <message>
        <source>Denied</source>
        <translation>Abgelehnt</translation>
    </message>
    <message>
        <source>Inbox</source>
        <translation>Posteingang</translation>
    </message>
    <message>
        <source>A folder of its own</source>
        <translation>Ein eigener Ordner</translation>
    </message>
    <message>
        <source>Screened folder</source>
        <translation>Ordner „Vorsortiert“</translation>
    </message>
    <message>
        <source>Live</source>
        <translation>Aktiv</translation>
    </message>
    <message>
        <source>Expired</source>
        <translation>Abgelaufen</translation>
    </message>
    <message>
        <source>Revoked</source>
        <translation>Widerrufen</translation>
    </message>
    <message numerus="yes">
        <source>%1 and %n more</source>
        <translation>
            <numerusform>%1 und %n weiterer</numerusform>
            <numerusform>%1 und %n weitere</numerusform>
        </translation>
    </message>
    <message>
        <source>Revoked %1</source>
        <translation>Widerrufen %1</translation>
    </message>
    <message>
        <source>Never</source>
        <translation>Nie</translation>
    </message>
    <message>
        <source>Site</source>
        <translation>Website</translation>
    </message>
    <message>
        <source>Status</source>
        <translation>Status</translation>
    </message>
    <message>
        <source>Mail received</source>
        <translation>Empfangene Mails</translation>
    </message>
    <message>
        <source>Refused</source>
        <translation>Abgewiesen</translation>
    </message>
    <message>
        <source>Spam, viruses, and mail after it was revoked or expired</source>
        <translation>Spam, Viren und Mail, nachdem sie widerrufen wurde oder abgelaufen war</translation>
    </message>
    <message>
        <source>From</source>
        <translation>Von</translation>
    </message>
    <message>
        <source>Last mail</source>
        <translation>Letzte Mail</translation>
    </message>
    <message>
        <source>Mail goes to</source>
        <translation>Mail geht an</translation>
    </message>
    <message>
        <source>Ends</source>
        <translation>Endet</translation>
    </message>
    <message>
        <source>Where sign-up mail usually goes</source>
        <translation>Wohin Mail an Anmeldeadressen normalerweise geht</translation>
    </message>
    <message>
        <source>In 30 days</source>
        <translation>In 30 Tagen</translation>
    </message>
    <message>
        <source>In 90 days</source>
        <translation>In 90 Tagen</translation>
    </message>
    <message>
        <source>In a year</source>
        <translation>In einem Jahr</translation>
    </message>
    <message>
        <source>Revoke sign-up address</source>
        <translation>Anmeldeadresse widerrufen</translation>
    </message>
    <message>
        <source>Revoke %1 (%2)? Mail to it will be refused from now on.</source>
        <translation>%1 (%2) widerrufen? Mail an diese Adresse wird ab jetzt abgewiesen.</translation>
    </message>
    <message>
        <source>This gateway does not offer sign-up addresses yet; it needs an update.</source>
        <translation>Dieses Gateway bietet noch keine Anmeldeadressen an; es braucht ein Update.</translation>
    </message>
    <message>
        <source>Sign-up addresses</source>
        <translation>Anmeldeadressen</translation>
    </message>
    <message>
        <source>e.g. the shop&apos;s or newsletter&apos;s name</source>
        <translation>z. B. der Name des Shops oder Newsletters</translation>
    </message>
    <message>
        <source>Site name for the new sign-up address</source>
        <translation>Name der Website für die neue Anmeldeadresse</translation>
    </message>
    <message>
        <source>&amp;Site:</source>
        <translation>&amp;Website:</translation>
    </message>
    <message>
        <source>Your address the sign-up address belongs to</source>
        <translation>Ihre Adresse, zu der die Anmeldeadresse gehört</translation>
    </message>
    <message>
        <source>&amp;For:</source>
        <translation>&amp;Für:</translation>
    </message>
    <message>
        <source>When the sign-up address stops working</source>
        <translation>Wann die Anmeldeadresse aufhört zu funktionieren</translation>
    </message>
    <message>
        <source>&amp;Dated: the end date is written into the address</source>
        <translation>&amp;Datiert: das Enddatum steht in der Adresse</translation>
    </message>
    <message>
        <source>Nobody can change the date, not even by editing the address</source>
        <translation>Niemand kann das Datum ändern, auch nicht durch Bearbeiten der Adresse</translation>
    </message>
    <message>
        <source>&amp;Ends:</source>
        <translation>&amp;Endet:</translation>
    </message>
    <message>
        <source>Where mail to the sign-up address goes</source>
        <translation>Wohin Mail an die Anmeldeadresse geht</translation>
    </message>
    <message>
        <source>&amp;Mail goes to:</source>
        <translation>&amp;Mail geht an:</translation>
    </message>
    <message>
        <source>&amp;Create and copy</source>
        <translation>&amp;Erstellen und kopieren</translation>
    </message>
    <message>
        <source>Make the address and copy it, ready to paste into the sign-up form</source>
        <translation>Die Adresse erstellen und kopieren, bereit zum Einfügen ins Anmeldeformular</translation>
    </message>
    <message>
        <source>A sign-up address is a separate address for one shop or newsletter: give it out when you sign up, its mail comes straight in, and you can switch it off if it ever starts sending unwanted mail.</source>
        <translation>Eine Anmeldeadresse ist eine eigene Adresse für einen Shop oder Newsletter: Sie geben sie bei der Anmeldung an, ihre Mail kommt direkt an, und Sie können sie abschalten, falls sie je unerwünschte Mail bekommt.</translation>
    </message>
    <message>
        <source>Your sign-up addresses</source>
        <translation>Ihre Anmeldeadressen</translation>
    </message>
    <message>
        <source>Select a sign-up address to see the mail it brought.</source>
        <translation>Wählen Sie eine Anmeldeadresse, um die Mail zu sehen, die über sie kam.</translation>
    </message>
    <message>
        <source>Its mail could not be loaded: %1</source>
        <translation>Die Mail dieser Adresse konnte nicht geladen werden: %1</translation>
    </message>
    <message>
        <source>Mail that came in by this address</source>
        <translation>Mail, die über diese Adresse kam</translation>
    </message>
    <message>
        <source>Revoke the selected sign-up address (Delete)</source>
        <translation>Die ausgewählte Anmeldeadresse widerrufen (Entf)</translation>
    </message>
    <message>
        <source>Co&amp;py address</source>
        <translation>Adresse &amp;kopieren</translation>
    </message>
    <message>
        <source>Copy the selected address (Ctrl+C)</source>
        <translation>Die ausgewählte Adresse kopieren (Strg+C)</translation>
    </message>
    <message>
        <source>Mail that came in by %1, newest first</source>
        <translation>Mail, die über %1 kam, die neueste zuerst</translation>
    </message>
    <message>
        <source>Name in the address: %1</source>
        <translation>Name in der Adresse: %1</translation>
    </message>
    <message>
        <source>Enter the name of the site you sign up at (letters or digits); it becomes part of the address.</source>
        <translation>Geben Sie den Namen der Website ein, bei der Sie sich anmelden (Buchstaben oder Ziffern); er wird Teil der Adresse.</translation>
    </message>
    <message>
        <source>%1 is copied to the clipboard: paste it where %2 asks for your email address.</source>
        <translation>%1 ist in der Zwischenablage: Fügen Sie sie ein, wo %2 nach Ihrer E-Mail-Adresse fragt.</translation>
    </message>
    <message>
        <source>Could not create the sign-up address: %1</source>
        <translation>Die Anmeldeadresse ließ sich nicht erstellen: %1</translation>
    </message>
    <message>
        <source>%1 is copied to the clipboard.</source>
        <translation>%1 ist in der Zwischenablage.</translation>
    </message>
    <message>
        <source>Revoked %1: mail to it is refused from now on.</source>
        <translation>%1 widerrufen: Mail an diese Adresse wird ab jetzt abgewiesen.</translation>
    </message>
    <message>
        <source>Could not revoke %1: %2</source>
        <translation>%1 ließ sich nicht widerrufen: %2</translation>
    </message>
    <message>
        <source>Could not undo “%1”: %2</source>
        <translation>„%1“ ließ sich nicht rückgängig machen: %2</translation>
    </message>
    <message>
        <source>Undone: %1</source>
        <translation>Rückgängig gemacht: %1</translation>
    </message>
    <message>
        <source>Undo</source>
        <translation>Rückgängig</translation>
    </message>
    <message>
        <source>Undo this (Ctrl+Z)</source>
        <translation>Rückgängig machen (Strg+Z)</translation>
    </message>
    <message>
        <source>Dismiss</source>
        <translation>Schließen</translation>
    </message>
    <message>
        <source>%1. Undo with Ctrl+Z</source>
        <translation>%1. Rückgängig mit Strg+Z</translation>
    </message>
    <message>
        <source>Undo: %1</source>
        <translation>Rückgängig: %1</translation>
    </message>
    <message>
        <source>Undo with Ctrl+Z</source>
        <translation>Rückgängig mit Strg+Z</translation>
    </message>
</context>
</TS>
